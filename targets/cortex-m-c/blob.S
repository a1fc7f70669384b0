/* The model blob in flash: `make BLOB=path` (cargo xtask capi passes the reduced bert-tiny
   blob). `.incbin` copies the file's bytes; no conversion to a C array is needed. */
    .section .rodata.microbert_blob, "a", %progbits
    .balign 16
    .global microbert_blob
microbert_blob:
    .incbin BLOB_PATH
    .global microbert_blob_end
microbert_blob_end:

    /* No executable stack wanted (silences the linker's warning). */
    .section .note.GNU-stack, "", %progbits
