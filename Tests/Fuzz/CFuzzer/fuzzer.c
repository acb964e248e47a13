// The declaration in include/fuzzer.h is all this module provides; libFuzzer defines it.
#include "fuzzer.h"
