#include "stack.h"

#include <stdint.h>

/* The paint (the 32-bit half of stack.rs's pattern). */
#define PAINT 0xC0DE5EEDu
/* Left unpainted below the stack pointer at entry, for the painting loop's own frame. */
#define MARGIN 512u

extern uint32_t _stack_start, _stack_end;

static uintptr_t stack_pointer(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

size_t stack_paint(void) {
    uintptr_t low = (uintptr_t)&_stack_end;
    uintptr_t high = (stack_pointer() - MARGIN) & ~(uintptr_t)3;
    uintptr_t p;
    for (p = low; p < high; p += 4) {
        *(volatile uint32_t *)p = PAINT;
    }
    return high > low ? (size_t)(high - low) : 0;
}

size_t stack_peak(void) {
    uintptr_t low = (uintptr_t)&_stack_end;
    uintptr_t top = (uintptr_t)&_stack_start;
    uintptr_t p = low;
    while (p < top && *(volatile const uint32_t *)p == PAINT) {
        p += 4;
    }
    return (size_t)(top - p);
}
