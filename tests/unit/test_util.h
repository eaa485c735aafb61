/* Shared helpers for the cmocka unit tests. */
#ifndef CMDGATE_TEST_UTIL_H
#define CMDGATE_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST(fn) cmocka_unit_test(fn)

#endif
