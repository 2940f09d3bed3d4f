// emu.cpp — the emulator's launch loop and the device.cu functions (kernels.h) on host memory.
#include "emu.h"

#include "kernels.h"

#include <ucontext.h>

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;
emu_block *emu_cur;

namespace {

struct emu_thread {
    ucontext_t ctx;
    std::vector<char> stack;
    bool done;
};

ucontext_t sched_ctx;
std::vector<emu_thread> threads;
int cur_thread;
const std::function<void()> *cur_body;

void thread_entry() {
    (*cur_body)();
    const int t = cur_thread;
    emu_cur->bar.drop();
    emu_cur->warps[(size_t)t / 32].bar.drop();
    threads[(size_t)t].done = true;
    // returning resumes uc_link: the scheduler
}

} // namespace

void emu_yield() { swapcontext(&threads[(size_t)cur_thread].ctx, &sched_ctx); }

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    const int nt = (int)(block.x * block.y * block.z);
    emu_block blk;
    blk.warps = std::vector<emu_warp>((size_t)(nt + 31) / 32);
    threads.resize((size_t)nt);
    for (auto &t : threads)
        if (t.stack.size() < (1u << 18))
            t.stack.assign(1u << 18, 0);
    blockDim = block;
    gridDim = grid;
    emu_cur = &blk;
    cur_body = &body;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = {x, y, z};
                blk.bar.reset(nt);
                for (size_t w = 0; w < blk.warps.size(); w++)
                    blk.warps[w].bar.reset(std::min(32, nt - 32 * (int)w));
                for (int t = 0; t < nt; t++) {
                    emu_thread &th = threads[(size_t)t];
                    getcontext(&th.ctx);
                    th.ctx.uc_stack.ss_sp = th.stack.data();
                    th.ctx.uc_stack.ss_size = th.stack.size();
                    th.ctx.uc_link = &sched_ctx;
                    makecontext(&th.ctx, thread_entry, 0);
                    th.done = false;
                }
                for (int left = nt; left > 0;) {
                    left = 0;
                    for (int t = 0; t < nt; t++) {
                        if (threads[(size_t)t].done)
                            continue;
                        cur_thread = t;
                        threadIdx = {(unsigned)t, 0, 0};
                        swapcontext(&sched_ctx, &threads[(size_t)t].ctx);
                        if (!threads[(size_t)t].done)
                            left++;
                    }
                }
            }
    emu_cur = nullptr;
}

extern "C" int reason_cuda_device_count(void) { return 1; }
extern "C" void *reason_cuda_malloc(size_t bytes) {
    return aligned_alloc(256, (bytes + 255) / 256 * 256);
}
extern "C" void *reason_cuda_malloc_managed(size_t bytes) { return reason_cuda_malloc(bytes); }
extern "C" void reason_cuda_free(void *p) { free(p); }
extern "C" int reason_cuda_upload(void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int reason_cuda_download(void *dst, const void *src, size_t bytes) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int reason_cuda_sync(void) { return 0; }
extern "C" const char *reason_cuda_error_string(int err) {
    return err == REASON_CUDA_UNSUPPORTED ? "unsupported by the CUDA kernels" : "emulated error";
}
extern "C" int reason_cuda_memset(void *dst, int value, size_t bytes) {
    memset(dst, value, bytes);
    return 0;
}
extern "C" void *reason_cuda_host_alloc(size_t bytes) { return reason_cuda_malloc(bytes); }
extern "C" void reason_cuda_host_free(void *p) { free(p); }
extern "C" int reason_cuda_upload_async(void *dst, const void *src, size_t bytes, void *) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int reason_cuda_download_async(void *dst, const void *src, size_t bytes, void *) {
    memmove(dst, src, bytes);
    return 0;
}
extern "C" int reason_cuda_stream_sync(void *) { return 0; }
extern "C" int reason_cuda_last_error(void) { return 0; }
extern "C" int reason_cuda_sm_count(void) {
    const char *e = getenv("EMU_SM");
    return e ? atoi(e) : 8;
}
