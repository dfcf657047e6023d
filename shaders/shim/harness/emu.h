// emu.h: runs a compute dispatch on the CPU, one coroutine per GPU thread.
//
// Threadgroups run one after another; inside a threadgroup every thread is a coroutine with its
// own stack, all switched on one OS thread, so runs are deterministic. simd_sum and friends post
// the lane's value, wait until every still-running lane of the simdgroup has posted, combine
// the values in lane order and wait again before returning (two barriers, so nobody overwrites
// its slot while others still read). threadgroup_barrier waits for every running thread of the
// threadgroup. A lane that has returned counts as inactive, as in Metal. If no thread can run
// and some are still waiting, the kernel is divergent at a barrier: the harness aborts.
//
// Switching: each lane's stack is entered once with makecontext/setcontext; from then on lanes
// and the scheduler switch with _setjmp/_longjmp, which, unlike swapcontext, make no system call
// (swapcontext saves the signal mask each time, which dominated the run time). Build without
// _FORTIFY_SOURCE: its longjmp check rejects jumps between stacks.
//
// Include before <metal_stdlib> (the shim's empty `thread` and `device` macros would otherwise
// rewrite the system headers).
#pragma once

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

namespace emu {

// Idx holds the built-in indices of one GPU thread.
struct Idx {
    uint32_t tg[3];  // threadgroup_position_in_grid
    uint32_t tp[3];  // thread_position_in_threadgroup
    uint32_t ntg[3]; // threads_per_threadgroup
    uint32_t sg;     // simdgroup_index_in_threadgroup
    uint32_t lane;   // thread_index_in_simdgroup
};

using Body = std::function<void(const Idx &, void *tgmem)>;

enum State { Runnable, WaitSimd, WaitGroup, Done };

constexpr uint32_t kSimdWidth = 32;
constexpr size_t kStack = 256 * 1024;

// Lane is a coroutine slot; slots live for the whole process and run one thread at a time.
struct Lane {
    jmp_buf jb;
    ucontext_t uc;
    char *stack = nullptr; // kStack bytes, left uninitialised so untouched pages cost nothing
    State state = Done;
    Idx idx{};
    alignas(16) unsigned char val[16]; // the value posted to a cross-lane operation
};

struct Group {
    std::vector<Lane *> lanes;
    size_t n = 0; // lanes of the current threadgroup
    jmp_buf main;
    const Body *body = nullptr;
    void *tgmem = nullptr;
    size_t cur = 0;
};

inline Group &group() {
    static Group g;
    return g;
}

inline Lane &current() { return *group().lanes[group().cur]; }

// entry is the loop every lane slot runs on its own stack: park, run a thread, park again.
inline void entry() {
    Group &g = group();
    Lane *l = g.lanes[g.cur];
    for (;;) {
        if (_setjmp(l->jb) == 0) {
            _longjmp(g.main, 1);
        }
        (*g.body)(l->idx, g.tgmem);
        l->state = Done;
    }
}

// resume runs lane i until it waits or finishes.
inline void resume(size_t i) {
    Group &g = group();
    g.cur = i;
    if (_setjmp(g.main) == 0) {
        _longjmp(g.lanes[i]->jb, 1);
    }
}

// slots makes sure n lane slots exist, entering each new one once to park it.
inline void slots(size_t n) {
    Group &g = group();
    while (g.lanes.size() < n) {
        Lane *l = new Lane; // never freed: slots are reused for every dispatch
        l->stack = static_cast<char *>(std::malloc(kStack));
        if (!l->stack) {
            std::fprintf(stderr, "harness: out of memory for lane stacks\n");
            std::exit(3);
        }
        getcontext(&l->uc);
        l->uc.uc_stack.ss_sp = l->stack;
        l->uc.uc_stack.ss_size = kStack;
        l->uc.uc_link = nullptr;
        makecontext(&l->uc, entry, 0);
        g.lanes.push_back(l);
        g.cur = g.lanes.size() - 1;
        if (_setjmp(g.main) == 0) {
            setcontext(&l->uc); // entry parks and jumps back here
        }
    }
}

inline void wait(State s) {
    Lane &l = current();
    l.state = s;
    if (_setjmp(l.jb) == 0) {
        _longjmp(group().main, 1);
    }
}

// release wakes the lanes of [lo, hi) if every running one waits in state s.
inline bool release(size_t lo, size_t hi, State s) {
    Group &g = group();
    size_t waiting = 0;
    for (size_t i = lo; i < hi; ++i) {
        if (g.lanes[i]->state == s) {
            ++waiting;
        } else if (g.lanes[i]->state != Done) {
            return false;
        }
    }
    if (waiting == 0) {
        return false;
    }
    for (size_t i = lo; i < hi; ++i) {
        if (g.lanes[i]->state == s) {
            g.lanes[i]->state = Runnable;
        }
    }
    return true;
}

// Fenced is memory whose last byte is followed by an inaccessible page, so a read or write even
// one byte past the end faults (the harness turns the fault into a report). The data starts at
// a 16-byte boundary, so an allocation whose length is not a multiple of 16 has that much slack.
struct Fenced {
    unsigned char *base = nullptr, *data = nullptr;
    size_t map = 0;
    Fenced() = default;
    Fenced(const Fenced &) = delete;
    Fenced &operator=(const Fenced &) = delete;
    explicit Fenced(size_t len, size_t before = 0) { alloc(len, before); }
    ~Fenced() { free(); }
    void alloc(size_t len, size_t before = 0) {
        free();
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        const size_t body = (before + len + 15) / 16 * 16;
        const size_t used = (body + page - 1) / page * page;
        map = used + page;
        void *p = mmap(nullptr, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            std::fprintf(stderr, "harness: out of memory\n");
            std::exit(3);
        }
        base = static_cast<unsigned char *>(p);
        mprotect(base + used, page, PROT_NONE);
        data = base + used - (len + 15) / 16 * 16; // `before` bytes of it precede data
    }
    void free() {
        if (base) munmap(base, map);
        base = data = nullptr;
    }
};

// run executes body for every thread of groups[0..2] x threads[0..2] with exactly tgmem_bytes
// of threadgroup memory (fenced: no slack past the size the host asked for).
inline void run(const uint32_t groups[3], const uint32_t threads[3], size_t tgmem_bytes, const Body &body) {
    Group &g = group();
    const size_t n = size_t(threads[0]) * threads[1] * threads[2];
    if (n == 0 || n > 1024) {
        std::fprintf(stderr, "harness: %zu threads per threadgroup (want 1..1024)\n", n);
        std::exit(3);
    }
    slots(n);
    g.n = n;
    g.body = &body;
    Fenced tg(tgmem_bytes);
    g.tgmem = tgmem_bytes ? tg.data : nullptr;
    for (uint32_t gz = 0; gz < groups[2]; ++gz)
    for (uint32_t gy = 0; gy < groups[1]; ++gy)
    for (uint32_t gx = 0; gx < groups[0]; ++gx) {
        std::memset(tg.data, 0xA5, tgmem_bytes); // uninitialised threadgroup memory
        for (size_t i = 0; i < n; ++i) {
            Lane &l = *g.lanes[i];
            l.state = Runnable;
            l.idx = Idx{{gx, gy, gz},
                        {uint32_t(i % threads[0]), uint32_t(i / threads[0] % threads[1]), uint32_t(i / threads[0] / threads[1])},
                        {threads[0], threads[1], threads[2]},
                        uint32_t(i / kSimdWidth), uint32_t(i % kSimdWidth)};
        }
        for (;;) {
            bool ran = false;
            for (size_t i = 0; i < n; ++i) {
                if (g.lanes[i]->state == Runnable) {
                    resume(i);
                    ran = true;
                }
            }
            bool woke = release(0, n, WaitGroup);
            for (size_t s = 0; s < n; s += kSimdWidth) {
                woke |= release(s, s + kSimdWidth < n ? s + kSimdWidth : n, WaitSimd);
            }
            bool done = true;
            for (size_t i = 0; i < n; ++i) {
                done &= g.lanes[i]->state == Done;
            }
            if (done) {
                break;
            }
            if (!ran && !woke) {
                std::fprintf(stderr, "harness: threadgroup (%u,%u,%u): lanes wait at different barriers\n", gx, gy, gz);
                std::exit(4);
            }
        }
    }
}

// reduce posts v, waits for the simdgroup and folds every running lane's value with op.
template <class T, class Op> T reduce(T v, Op op) {
    static_assert(sizeof(T) <= 16, "value too large");
    Group &g = group();
    std::memcpy(current().val, &v, sizeof v);
    wait(WaitSimd);
    const size_t lo = g.cur / kSimdWidth * kSimdWidth;
    const size_t hi = lo + kSimdWidth < g.n ? lo + kSimdWidth : g.n;
    bool first = true;
    T acc{};
    for (size_t i = lo; i < hi; ++i) {
        if (g.lanes[i]->state == Done) {
            continue;
        }
        T x;
        std::memcpy(&x, g.lanes[i]->val, sizeof x);
        acc = first ? x : op(acc, x);
        first = false;
    }
    wait(WaitSimd);
    return acc;
}

} // namespace emu
