//! What the host CPU is and has: its model name and the x86 features the kernel tiers are
//! selected by (for `microbert inspect --cpu`, the conformance test's report and the
//! benchmarks). Selection itself is [`crate::Tier::supported`]; this module only reports.

/// The CPU's model name: the CPUID brand string on x86-64, else the `model name` of
/// `/proc/cpuinfo`, else `unknown`.
pub fn model_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::__cpuid;
        // CPUID exists on every x86-64 CPU; leaf 0x8000_0000 gives the highest extended
        // leaf, and 0x8000_0002..=0x8000_0004 the 48-byte brand string.
        if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
            let bytes: Vec<u8> = (0x8000_0002u32..=0x8000_0004)
                .flat_map(|leaf| {
                    let r = __cpuid(leaf);
                    [r.eax, r.ebx, r.ecx, r.edx]
                        .into_iter()
                        .flat_map(u32::to_le_bytes)
                })
                .take_while(|&b| b != 0)
                .collect();
            let name = String::from_utf8_lossy(&bytes).trim().to_owned();
            if !name.is_empty() {
                return name;
            }
        }
    }
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Whether the CPU has AMX-TILE and AMX-INT8: CPUID leaf 7, EDX bits 24 and 25 (the
/// detection macro's names for them are not stable yet). Whether the operating system
/// lets this process use them is [`crate::Tier::supported`]'s second question.
pub fn amx_int8() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{__cpuid, __cpuid_count};
        const TILE_AND_INT8: u32 = 3 << 24;
        __cpuid(0).eax >= 7 && __cpuid_count(7, 0).edx & TILE_AND_INT8 == TILE_AND_INT8
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The x86 features the tiers need, with whether this CPU has each:
/// `is_x86_feature_detected!` names, and `amx-int8` ([`amx_int8`]).
pub fn features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let amx_int8 = amx_int8();
        vec![
            ("avx2", has!("avx2")),
            ("avxvnni", has!("avxvnni")),
            ("avx512f", has!("avx512f")),
            ("avx512bw", has!("avx512bw")),
            ("avx512vnni", has!("avx512vnni")),
            ("amx-int8", amx_int8),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

/// `avx2 avx512f ... (missing: amx-int8)`: the features found, then those missing.
pub fn features_line() -> String {
    let all = features();
    let have: Vec<&str> = all.iter().filter(|f| f.1).map(|f| f.0).collect();
    let lack: Vec<&str> = all.iter().filter(|f| !f.1).map(|f| f.0).collect();
    let mut line = if have.is_empty() {
        "none".to_owned()
    } else {
        have.join(" ")
    };
    if !lack.is_empty() {
        line.push_str(&format!(" (missing: {})", lack.join(" ")));
    }
    line
}
