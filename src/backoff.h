/*
 * backoff: how long to wait before trying again. Pure: randomness comes in
 * as an argument, so behaviour is reproducible in tests. Used for calls to
 * AWS, credential refresh and (to come) MQTT reconnects.
 */
#ifndef CMDGATE_BACKOFF_H
#define CMDGATE_BACKOFF_H

#include <stdint.h>

/*
 * Capped exponential backoff with full jitter: a delay uniformly drawn from
 * [0, min(cap_ms, base_ms * 2^(retry-1))], retry counting from 1. rnd is a
 * uniformly random 32-bit number.
 */
uint64_t backoff_full_jitter(unsigned retry, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd);

/*
 * The same ceiling with "equal jitter": a delay drawn from [ceiling/2,
 * ceiling]. For loops that must not hammer a peer that keeps failing
 * (credential refresh, reconnects): the wait never collapses to zero.
 */
uint64_t backoff_equal_jitter(unsigned retry, uint64_t base_ms, uint64_t cap_ms, uint32_t rnd);

#endif
