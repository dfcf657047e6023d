// harness.cpp: executes the kernels of shaders/*.metal on the CPU (flat mode of the shim).
//
//   harness layout          prints sizeof/offsetof of every argument struct of args.h
//   harness run IN OUT      runs the command list in IN, writes the buffers to OUT
//
// IN (little-endian): "BKCL", u32 version 1, u32 buffer count, then per buffer u64 length and
// the bytes; u32 dispatch count, then per dispatch: u32 name length and name, u32 args length
// and the args bytes (bound at buffer index 0), u32 groups[3], u32 threads[3], u32 threadgroup
// memory bytes, u32 binding count and per binding u32 index, u32 buffer, u64 offset.
// Dispatches run in order (a barrier between each). OUT: "BKCL", u32 count, per buffer u64
// length and bytes. Every buffer gets guard bytes before it and an inaccessible page right
// after it (at most 15 bytes of slack, to keep the data 16-byte aligned): a kernel writing into
// the guard bytes is reported (exit 5), one reading or writing past the end faults and is
// reported (exit 6). Threadgroup memory is fenced the same way, with no slack. Go driver: package shaders/shim.
#include "emu.h"

#include <csignal>
#include <cstddef>
#include <map>
#include <string>

#include <metal_stdlib>

#include "common.h"
#include "args.h"
#include "matvec_q1.metal"
#include "norm.metal"
#include "rope.metal"
#include "attention.metal"
#include "act.metal"
#include "flip.metal"

namespace metal {
float simd_sum(float x) { return emu::reduce(x, [](float a, float b) { return a + b; }); }
uint simd_sum(uint x) { return emu::reduce(x, [](uint a, uint b) { return a + b; }); }
int simd_sum(int x) { return emu::reduce(x, [](int a, int b) { return a + b; }); }
float simd_max(float x) { return emu::reduce(x, [](float a, float b) { return a < b ? b : a; }); }
void threadgroup_barrier(mem_flags) { emu::wait(emu::WaitGroup); }
void simdgroup_barrier(mem_flags) { emu::reduce(0, [](int a, int) { return a; }); }
} // namespace metal

namespace {

constexpr size_t kGuard = 64;
constexpr unsigned char kGuardByte = 0xA5;

[[noreturn]] void die(int code, const char *msg, const std::string &what = "") {
    std::fprintf(stderr, "harness: %s%s\n", msg, what.c_str());
    std::exit(code);
}

// Buffer is kGuard guard bytes, the data and up to 15 bytes of guard slack, then an inaccessible
// page: reads past the end fault, writes into the guard bytes are reported after the dispatch.
struct Buffer {
    emu::Fenced mem;
    size_t len = 0;
    size_t total = 0; // guard bytes before + data + slack
    unsigned char *data() { return mem.data; }
    unsigned char *lo() { return mem.data - kGuard; }
};

const char *volatile g_kernel = "(none)"; // the dispatch running, for the fault report

extern "C" void on_fault(int sig, siginfo_t *info, void *) {
    char msg[256];
    int n = std::snprintf(msg, sizeof msg, "harness: kernel %s: out-of-bounds access at %p (signal %d)\n", g_kernel,
                          info->si_addr, sig);
    if (n > 0) {
        ssize_t r = write(2, msg, size_t(n));
        (void)r;
    }
    _exit(6);
}

struct Bind {
    uint32_t index, buf;
    uint64_t off;
};

struct Dispatch {
    std::string name;
    std::vector<unsigned char> args;
    uint32_t groups[3], threads[3], tgmem;
    std::vector<Bind> binds;
};

struct Reader {
    FILE *f;
    template <class T> T get() {
        T v;
        if (std::fread(&v, sizeof v, 1, f) != 1) die(2, "truncated input");
        return v;
    }
    void bytes(unsigned char *p, size_t n) {
        if (n && std::fread(p, 1, n, f) != n) die(2, "truncated input");
    }
};

struct Ctx {
    Dispatch &d;
    std::vector<Buffer> &bufs;
    template <class T> T &args() {
        if (d.args.size() != sizeof(T)) die(2, "argument size mismatch for ", d.name);
        return *reinterpret_cast<T *>(d.args.data());
    }
    template <class T> T *ptr(uint32_t index) {
        for (auto &b : d.binds) {
            if (b.index == index) {
                if (b.buf >= bufs.size() || b.off > bufs[b.buf].len) die(2, "bad binding for ", d.name);
                return reinterpret_cast<T *>(bufs[b.buf].data() + b.off);
            }
        }
        die(2, "unbound buffer index for ", d.name + " " + std::to_string(index));
    }
    void run(const emu::Body &body) { emu::run(d.groups, d.threads, d.tgmem, body); }
};

inline uint3 u3(const uint32_t v[3]) { return uint3{v[0], v[1], v[2]}; }

#define BUILTINS u3(i.tg), u3(i.tp), u3(i.ntg), i.sg, i.lane

const std::map<std::string, void (*)(Ctx &)> kernels = {
    {"matvec_q1", [](Ctx &c) {
         auto &a = c.args<Q1Args>();
         auto b = c.ptr<uchar>(1); auto s = c.ptr<uchar>(2); auto x = c.ptr<float>(3); auto o = c.ptr<float>(4);
         c.run([&](const emu::Idx &i, void *) { matvec_q1(a, b, s, x, o, BUILTINS); });
     }},
    {"embed_q1", [](Ctx &c) {
         auto &a = c.args<Q1Args>();
         auto b = c.ptr<uchar>(1); auto s = c.ptr<uchar>(2); auto t = c.ptr<int>(3); auto o = c.ptr<float>(4);
         c.run([&](const emu::Idx &i, void *) { embed_q1(a, b, s, t, o, BUILTINS); });
     }},
    {"rms_norm", [](Ctx &c) {
         auto &a = c.args<NormArgs>();
         auto x = c.ptr<float>(1); auto w = c.ptr<float>(2); auto o = c.ptr<float>(3);
         c.run([&](const emu::Idx &i, void *tg) { rms_norm(a, x, w, o, static_cast<float *>(tg), BUILTINS); });
     }},
    {"rope_neox", [](Ctx &c) {
         auto &a = c.args<RopeArgs>();
         auto x = c.ptr<float>(1); auto cs = c.ptr<float>(2); auto sn = c.ptr<float>(3);
         c.run([&](const emu::Idx &i, void *) { rope_neox(a, x, cs, sn, BUILTINS); });
     }},
    {"attention", [](Ctx &c) {
         auto &a = c.args<AttnArgs>();
         auto q = c.ptr<float>(1); auto k = c.ptr<float>(2); auto v = c.ptr<float>(3); auto o = c.ptr<float>(4);
         c.run([&](const emu::Idx &i, void *) { attention(a, q, k, v, o, BUILTINS); });
     }},
    {"add_f32", [](Ctx &c) {
         auto &a = c.args<EltArgs>();
         auto d = c.ptr<float>(1); auto s = c.ptr<float>(2);
         c.run([&](const emu::Idx &i, void *) { add_f32(a, d, s, BUILTINS); });
     }},
    {"silu_mul", [](Ctx &c) {
         auto &a = c.args<EltArgs>();
         auto g = c.ptr<float>(1); auto u = c.ptr<float>(2); auto o = c.ptr<float>(3);
         c.run([&](const emu::Idx &i, void *) { silu_mul(a, g, u, o, BUILTINS); });
     }},
    {"flip_delta", [](Ctx &c) {
         auto &a = c.args<FlipArgs>();
         auto b = c.ptr<uchar>(1); auto s = c.ptr<uchar>(2); auto x = c.ptr<float>(3);
         auto base = c.ptr<float>(4); auto f = c.ptr<FlipDesc>(5); auto r = c.ptr<float>(6);
         c.run([&](const emu::Idx &i, void *) { flip_delta(a, b, s, x, base, f, r, BUILTINS); });
     }},
};

#define STRUCT(S) std::printf("%s %zu\n", #S, sizeof(S));
#define FIELD(S, F) std::printf("%s.%s %zu\n", #S, #F, offsetof(S, F));

void layout() {
    STRUCT(block_q1_0) FIELD(block_q1_0, d) FIELD(block_q1_0, qs)
    STRUCT(Q1Layout) FIELD(Q1Layout, rows) FIELD(Q1Layout, cols) FIELD(Q1Layout, groups)
    FIELD(Q1Layout, bit_stride) FIELD(Q1Layout, scale_stride) FIELD(Q1Layout, scale_kind)
    FIELD(Q1Layout, bit_off) FIELD(Q1Layout, scale_off)
    STRUCT(Q1Args) FIELD(Q1Args, w) FIELD(Q1Args, n)
    STRUCT(NormArgs) FIELD(NormArgs, rows) FIELD(NormArgs, width) FIELD(NormArgs, eps)
    STRUCT(RopeArgs) FIELD(RopeArgs, n) FIELD(RopeArgs, heads) FIELD(RopeArgs, dim)
    STRUCT(AttnArgs) FIELD(AttnArgs, n) FIELD(AttnArgs, ctx) FIELD(AttnArgs, heads)
    FIELD(AttnArgs, kv_heads) FIELD(AttnArgs, dim) FIELD(AttnArgs, scale)
    STRUCT(EltArgs) FIELD(EltArgs, count)
    STRUCT(FlipArgs) FIELD(FlipArgs, w) FIELD(FlipArgs, n) FIELD(FlipArgs, n_flips)
    STRUCT(FlipDesc) FIELD(FlipDesc, row) FIELD(FlipDesc, group) FIELD(FlipDesc, col)
}

int runList(const char *in, const char *out) {
    FILE *f = std::fopen(in, "rb");
    if (!f) die(2, "cannot open ", in);
    Reader r{f};
    if (r.get<uint32_t>() != 0x4c434b42u || r.get<uint32_t>() != 1) die(2, "bad magic or version");
    std::vector<Buffer> bufs(r.get<uint32_t>());
    for (auto &b : bufs) {
        b.len = r.get<uint64_t>();
        b.mem.alloc(b.len, kGuard);
        b.total = kGuard + (b.len + 15) / 16 * 16;
        std::memset(b.lo(), kGuardByte, b.total);
        r.bytes(b.data(), b.len);
    }
    std::vector<Dispatch> ds(r.get<uint32_t>());
    for (auto &d : ds) {
        d.name.resize(r.get<uint32_t>());
        r.bytes(reinterpret_cast<unsigned char *>(d.name.data()), d.name.size());
        d.args.resize(r.get<uint32_t>());
        r.bytes(d.args.data(), d.args.size());
        for (auto &g : d.groups) g = r.get<uint32_t>();
        for (auto &t : d.threads) t = r.get<uint32_t>();
        d.tgmem = r.get<uint32_t>();
        d.binds.resize(r.get<uint32_t>());
        for (auto &b : d.binds) {
            b.index = r.get<uint32_t>();
            b.buf = r.get<uint32_t>();
            b.off = r.get<uint64_t>();
        }
    }
    std::fclose(f);
    for (auto &d : ds) {
        auto k = kernels.find(d.name);
        if (k == kernels.end()) die(2, "unknown kernel ", d.name);
        Ctx c{d, bufs};
        g_kernel = d.name.c_str();
        k->second(c);
        for (size_t i = 0; i < bufs.size(); ++i) {
            auto &b = bufs[i];
            for (size_t j = 0; j < b.total; ++j) {
                if ((j < kGuard || j >= kGuard + b.len) && b.lo()[j] != kGuardByte) {
                    die(5, "kernel wrote outside buffer ", d.name + " buffer " + std::to_string(i));
                }
            }
        }
    }
    FILE *o = std::fopen(out, "wb");
    if (!o) die(2, "cannot create ", out);
    const uint32_t magic = 0x4c434b42u, n = uint32_t(bufs.size());
    std::fwrite(&magic, 4, 1, o);
    std::fwrite(&n, 4, 1, o);
    for (auto &b : bufs) {
        const uint64_t len = b.len;
        std::fwrite(&len, 8, 1, o);
        std::fwrite(b.data(), 1, b.len, o);
    }
    return std::fclose(o) == 0 ? 0 : 2;
}

} // namespace

int main(int argc, char **argv) {
    if (argc == 2 && std::string(argv[1]) == "layout") {
        layout();
        return 0;
    }
    if (argc == 4 && std::string(argv[1]) == "run") {
        struct sigaction sa{};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
        return runList(argv[2], argv[3]);
    }
    std::fprintf(stderr, "usage: harness layout | harness run IN OUT\n");
    return 2;
}
