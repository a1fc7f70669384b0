//! End to end: MiniLM sentence embeddings computed with this backend must hash exactly as
//! the host's scalar reference computed them (`cargo xtask cross` runs it under qemu).

#[path = "../../shared-tests/minilm_end_to_end.rs"]
mod minilm_end_to_end;

#[test]
fn minilm_embeddings_match_host_scalar() {
    minilm_end_to_end::run(microbert_riscv::RvvKernels::new());
}
