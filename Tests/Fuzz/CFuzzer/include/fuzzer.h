// libFuzzer's driver, called from each fuzz target's own main: SwiftPM gives an executable
// target's entry point a name of its own, so libFuzzer's main cannot be the one that runs.
#ifndef SWIFT_LORA_FUZZER_H
#define SWIFT_LORA_FUZZER_H
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
