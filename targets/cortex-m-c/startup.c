/* Start-up for the Cortex-M4F: the vector table, the reset handler (copy .data, zero .bss,
   enable the FPU, run main, exit through semihosting) and a fault handler that reports and
   exits. The symbols come from link.ld. */
#include "semihosting.h"

#include <stdint.h>

extern uint32_t __sidata, __sdata, __edata, __sbss, __ebss, _stack_start;

int main(void);
void Reset_Handler(void);
static void Fault_Handler(void);

/* The ARMv7-M vector table: initial stack pointer, then the 15 system exceptions (the
   library uses no interrupts). */
struct vector_table {
    uint32_t *initial_sp;
    void (*handlers[15])(void);
};

__attribute__((section(".vector_table"), used)) const struct vector_table vectors = {
    &_stack_start,
    {Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, 0,
     0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler},
};

void Reset_Handler(void) {
    uint32_t *src = &__sidata;
    uint32_t *dst = &__sdata;
    while (dst < &__edata) {
        *dst++ = *src++;
    }
    for (dst = &__sbss; dst < &__ebss;) {
        *dst++ = 0;
    }
    /* CPACR: full access to CP10 and CP11 (the FPU), before any floating-point code. */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    sh_exit(main() == 0);
}

/* A fault (a library panic executes `udf`, which escalates to HardFault) ends the run. */
static void Fault_Handler(void) {
    sh_puts("fault: the core took an exception\n");
    sh_exit(0);
}
