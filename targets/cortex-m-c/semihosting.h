/* Semihosting console and exit for qemu (and debug probes): SYS_WRITE0 and SYS_EXIT through
   `bkpt 0xAB`, plus the few number formats the firmware prints. No printf: newlib's is
   tens of kilobytes. */
#ifndef SEMIHOSTING_H
#define SEMIHOSTING_H

#include <stddef.h>
#include <stdint.h>

/* Writes a NUL-terminated string to the host's console. */
void sh_puts(const char *s);
/* Unsigned and signed decimal, and 16 hex digits. */
void sh_put_u32(uint32_t v);
void sh_put_i32(int32_t v);
void sh_put_hex64(uint64_t v);
/* Ends the program: qemu exits with status 0 when `success`, 1 otherwise. */
void sh_exit(int success);

#endif
