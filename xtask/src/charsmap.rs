//! Builds a SentencePiece `precompiled_charsmap` (the form Hugging Face's `Precompiled`
//! normaliser and the runtime's Unigram tokenizer read) from a map of replacements.
//!
//! Layout: a u32 LE byte length of the trie, the trie as darts-clone double-array units
//! (u32 LE), then the pool of NUL-terminated replacement strings the trie's leaf values
//! point into. The unit layout is darts-clone's: bits 0-7 the label of the edge into the
//! unit, bit 8 "this node has a leaf", bits 10-31 the offset (XORed with the node's
//! position it gives the base of its children; bit 9 would scale it by 256, never needed
//! here); a leaf unit (the child at label 0) holds the value in bits 0-30 and sets bit 31,
//! so it never matches a label.
//!
//! The builder places nodes breadth first, each at the lowest base whose child slots are
//! all free (bases unique, never in the first block, which the root owns), so every
//! reachable position lies inside the array: the array length is a multiple of 256 and
//! XOR with a byte stays in a base's block.

use anyhow::{Result, bail};
use std::collections::{BTreeMap, HashSet, VecDeque};

#[derive(Default)]
struct Node {
    children: BTreeMap<u8, usize>,
    value: Option<u32>,
}

/// The charsmap bytes for `entries` (key, replacement), keys non-empty, distinct and free of
/// NUL bytes.
pub fn build(entries: &[(String, String)]) -> Result<Vec<u8>> {
    let mut pool = Vec::new();
    let mut nodes = vec![Node::default()];
    for (key, rep) in entries {
        if key.is_empty() || key.as_bytes().contains(&0) || rep.as_bytes().contains(&0) {
            bail!("charsmap key {key:?} or its replacement is empty or holds NUL");
        }
        let value = u32::try_from(pool.len())?;
        pool.extend_from_slice(rep.as_bytes());
        pool.push(0);
        let mut at = 0;
        for &b in key.as_bytes() {
            at = match nodes[at].children.get(&b) {
                Some(&c) => c,
                None => {
                    nodes.push(Node::default());
                    let c = nodes.len() - 1;
                    nodes[at].children.insert(b, c);
                    c
                }
            };
        }
        if nodes[at].value.replace(value).is_some() {
            bail!("charsmap key {key:?} appears twice");
        }
    }
    if pool.len() >= 1 << 31 {
        bail!("charsmap pool too large");
    }
    // Place the nodes: pos[node], and the units.
    let mut units: Vec<u32> = vec![0; 256];
    let mut used: Vec<bool> = vec![false; 256];
    used[0] = true;
    let mut bases: HashSet<usize> = HashSet::new();
    let mut next_free = 256usize;
    let mut queue = VecDeque::from([(0usize, 0usize, 0u8)]); // (node, position, label)
    while let Some((n, pos, label)) = queue.pop_front() {
        let node = &nodes[n];
        let mut labels: Vec<u8> = Vec::new();
        if node.value.is_some() {
            labels.push(0);
        }
        labels.extend(node.children.keys());
        let mut unit = u32::from(label);
        if !labels.is_empty() {
            let mut base = next_free & !0xFF;
            if base < 256 {
                base = 256;
            }
            let base = loop {
                let fits = !bases.contains(&base)
                    && labels
                        .iter()
                        .all(|&l| !used.get(base ^ usize::from(l)).copied().unwrap_or(false));
                if fits {
                    break base;
                }
                base += 1;
            };
            bases.insert(base);
            let end = (base | 0xFF) + 1;
            if units.len() < end {
                units.resize(end, 0);
                used.resize(end, false);
            }
            for &l in &labels {
                used[base ^ usize::from(l)] = true;
            }
            while next_free < used.len() && used[next_free] {
                next_free += 1;
            }
            let offset = pos ^ base;
            if offset >= 1 << 21 {
                bail!("charsmap trie too large for unscaled offsets");
            }
            unit |= u32::try_from(offset)? << 10;
            if let Some(v) = node.value {
                unit |= 1 << 8;
                units[base] = v | (1 << 31);
            }
            for (&l, &c) in &node.children {
                queue.push_back((c, base ^ usize::from(l), l));
            }
        }
        units[pos] = unit;
    }
    let mut out = Vec::with_capacity(4 + units.len() * 4 + pool.len());
    out.extend_from_slice(&u32::try_from(units.len() * 4)?.to_le_bytes());
    for u in &units {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out.extend_from_slice(&pool);
    Ok(out)
}

/// The replacement of the shortest key prefixing `key`, read back from built bytes (the
/// lookup `spm_precompiled` does), for the builder's self-check.
pub fn lookup<'a>(charsmap: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let len = u32::from_le_bytes(charsmap.get(..4)?.try_into().ok()?) as usize;
    let trie = charsmap.get(4..4 + len)?;
    let pool = charsmap.get(4 + len..)?;
    let unit = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            trie.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let offset = |u: u32| ((u >> 10) as usize) << ((u & (1 << 9)) >> 6);
    let mut node = offset(unit(0)?);
    for &c in key {
        node ^= usize::from(c);
        let u = unit(node)?;
        if u & ((1 << 31) | 0xFF) != u32::from(c) {
            return None;
        }
        node ^= offset(u);
        if (u >> 8) & 1 == 1 {
            let at = (unit(node)? & !(1 << 31)) as usize;
            let tail = pool.get(at..)?;
            let end = tail.iter().position(|&b| b == 0)?;
            return core::str::from_utf8(&tail[..end]).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_and_others_miss() {
        let entries: Vec<(String, String)> = [
            ("Ａ", "A"),
            ("ｂ", "b"),
            ("\u{1}", ""),
            ("\t", " "),
            ("㍻", "平成"),
            ("ﬁ", "fi"),
            ("é", "é"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        let map = build(&entries).unwrap();
        for (k, v) in &entries {
            assert_eq!(lookup(&map, k.as_bytes()), Some(v.as_str()), "{k:?}");
        }
        // A longer chunk gets its first key's replacement; unmapped text misses.
        assert_eq!(lookup(&map, "Ａx".as_bytes()), Some("A"));
        for miss in ["a", "B", "Ｂ", "\u{2}", "中"] {
            assert_eq!(lookup(&map, miss.as_bytes()), None, "{miss:?}");
        }
    }
}
