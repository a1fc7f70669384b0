//! The fuzz input as a stream of choices. Every read succeeds: an exhausted input reads
//! as zero bytes, so it always takes the first, cheapest branch (short inputs stay fast,
//! and rare, expensive choices need input bytes that ask for them).

/// A reader over the fuzz input.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 when exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` next bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }

    /// A little-endian number of `N` bytes (missing bytes are 0).
    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for (o, b) in out.iter_mut().zip(self.take(N)) {
            *o = *b;
        }
        out
    }

    /// Next `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }

    /// Next `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }

    /// Next `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }

    /// A number in `0..n` (0 if `n` is 0), reading as few bytes as `n` needs.
    pub fn below(&mut self, n: u64) -> u64 {
        let x = match n {
            0 | 1 => return 0,
            2..=256 => u64::from(self.byte()),
            257..=65_536 => u64::from(self.u16()),
            65_537..=0x1_0000_0000 => u64::from(self.u32()),
            _ => self.u64(),
        };
        x % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below((hi - lo).saturating_add(1))
    }

    /// A `usize` in `lo..=hi`.
    pub fn range_usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as u64, hi as u64) as usize
    }

    /// A `u32` in `lo..=hi`.
    pub fn range_u32(&mut self, lo: u32, hi: u32) -> u32 {
        self.range(u64::from(lo), u64::from(hi)) as u32
    }

    /// `true` with probability `k / of` (of at most 256); `false` when exhausted.
    pub fn chance(&mut self, k: u8, of: u16) -> bool {
        u16::from(self.byte()) % of + u16::from(k) >= of
    }

    /// One of `items` (the first when exhausted).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
