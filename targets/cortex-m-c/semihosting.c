/* Semihosting calls (ARM "Semihosting for AArch32 and AArch64", operations 0x04 SYS_WRITE0
   and 0x18 SYS_EXIT): r0 = operation, r1 = argument, `bkpt 0xAB` on M-profile cores.
   qemu writes SYS_WRITE0 text to its standard error; a debug probe to its console. */
#include "semihosting.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN 0x20023

static uint32_t semihosting(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void sh_puts(const char *s) { (void)semihosting(SYS_WRITE0, s); }

void sh_put_u32(uint32_t v) {
    char buf[11];
    char *p = buf + sizeof buf - 1;
    *p = '\0';
    do {
        *--p = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    sh_puts(p);
}

void sh_put_i32(int32_t v) {
    if (v < 0) {
        sh_puts("-");
        sh_put_u32(0u - (uint32_t)v);
    } else {
        sh_put_u32((uint32_t)v);
    }
}

void sh_put_hex64(uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    char buf[17];
    int i;
    for (i = 15; i >= 0; i--) {
        buf[i] = digits[v & 0xfu];
        v >>= 4;
    }
    buf[16] = '\0';
    sh_puts(buf);
}

void sh_exit(int success) {
    /* On 32-bit ARM the reason code is passed directly in r1. */
    uintptr_t reason = success ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR_UNKNOWN;
    (void)semihosting(SYS_EXIT, (const void *)reason);
    for (;;) {
    }
}
