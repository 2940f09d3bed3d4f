// cuda_fp16.h — stand-in for the CUDA header in the CPU emulator (emu.h).
#include "emu.h"
