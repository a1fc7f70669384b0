/* Stack painting, as targets/firmware-common/stack.rs does it for the Rust firmware: at
   entry every word between the end of static RAM (`_stack_end`) and a little below the
   stack pointer is filled with a pattern; after the work the lowest overwritten word gives
   the deepest the stack went. */
#ifndef STACK_H
#define STACK_H

#include <stddef.h>

/* Paints the free stack; returns the bytes painted. */
size_t stack_paint(void);
/* Bytes between the top of the stack and the lowest word that lost the paint. */
size_t stack_peak(void);

#endif
