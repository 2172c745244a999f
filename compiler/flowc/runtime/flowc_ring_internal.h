/* Declarations shared by flowc_ring.c and flowc_channels.c, not part of the public API (flowc_ring.h). */
#ifndef FLOWC_RING_INTERNAL_H
#define FLOWC_RING_INTERNAL_H

/* Records the calling thread's failure detail (printf-style) for flowc_last_error() and returns `status`. */
int flowc_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* FLOWC_RING_INTERNAL_H */
