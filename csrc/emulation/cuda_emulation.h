// CPU emulation of the CUDA device environment, so that the project's unmodified .cu/.cuh source
// compiles with g++ (C++20, -DBDB_CUDA_EMULATION) and its kernels run on the CPU, in tests, under
// ThreadSanitizer and under AddressSanitizer. Included by cuda/device_prelude.h; no torch, no c10.
//
// Execution model (docs/testing.md says what this proves and what it cannot):
//   * One launch at a time (a process-wide mutex); the grid's blocks run one after another.
//   * Each thread of a block is either a real OS thread from a pool reused across blocks and
//     launches (always under ThreadSanitizer/AddressSanitizer, which need real concurrent threads;
//     else with BDB_EMU_EXECUTOR=threads), or a fiber on the launching thread (the default: one
//     runs at a time until it waits or returns; same semantics, far cheaper switches, deterministic).
//   * __shared__ is `static`: one copy per kernel instantiation, shared by the threads of the block
//     that is running. It is not cleared between blocks (the GPU does not clear it either).
//   * Barriers count live threads only: a thread that returns early leaves every barrier of its block
//     and every warp collective of its warp.
//   * Warp collectives (__shfl_*_sync, __ballot_sync, __syncwarp, ...) rendezvous the live lanes their
//     mask names; reading a lane that has exited or is not taking part is reported as an error.
//   * Misuse is reported, not hung on: a deadlock (every live thread of a block waiting with nothing
//     left to arrive), __syncthreads reached from different call sites, a mask without the caller,
//     an invalid launch shape. The block is abandoned, the rest of the grid skipped, and the message
//     is returned by bdb_emu::get_last_error() (BDB_KERNEL_LAUNCH_CHECK() raises it as a c10::Error).
//   * A kernel that spins forever outside any collective cannot be stopped; with the thread pool,
//     after BDB_EMU_WATCHDOG_S seconds (default 300) the process prints where it is and aborts.
//
// Not supported: dynamic shared memory (extern __shared__), cooperative groups, clusters, texture
// and surface memory, __CUDA_ARCH__-only code paths (__CUDA_ARCH__ stays undefined), cross-block
// synchronisation (blocks never run concurrently, so a kernel that waits for another block hangs).
#pragma once

#if defined(__CUDACC__)
#error "cuda_emulation.h is for g++ builds of CUDA source (-DBDB_CUDA_EMULATION), not for nvcc"
#endif

#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <math.h>

// ---------------------------------------------------------------------------------------------
// Qualifiers and attributes
// ---------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
// Blocks run one at a time, so one static copy per kernel serves every block in turn.
#define __shared__ static
// Without -rdc each translation unit has its own __constant__ data; `static` matches that.
#define __constant__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
#define BDB_EMU_FULL_MASK 0xffffffffu

// ---------------------------------------------------------------------------------------------
// Built-in vector types and variables
// ---------------------------------------------------------------------------------------------
struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

#define BDB_EMU_VECTOR_TYPE(name, T, n, align)                   \
  struct __attribute__((aligned(align))) name##n {               \
    T BDB_EMU_VECTOR_FIELDS_##n;                                 \
  };
#define BDB_EMU_VECTOR_FIELDS_1 x
#define BDB_EMU_VECTOR_FIELDS_2 x, y
#define BDB_EMU_VECTOR_FIELDS_4 x, y, z, w
BDB_EMU_VECTOR_TYPE(float, float, 2, 8)
BDB_EMU_VECTOR_TYPE(float, float, 4, 16)
BDB_EMU_VECTOR_TYPE(double, double, 2, 16)
BDB_EMU_VECTOR_TYPE(int, int, 2, 8)
BDB_EMU_VECTOR_TYPE(int, int, 4, 16)
BDB_EMU_VECTOR_TYPE(uint, unsigned int, 2, 8)
BDB_EMU_VECTOR_TYPE(uint, unsigned int, 4, 16)
BDB_EMU_VECTOR_TYPE(longlong, long long, 2, 16)
#undef BDB_EMU_VECTOR_TYPE
#undef BDB_EMU_VECTOR_FIELDS_1
#undef BDB_EMU_VECTOR_FIELDS_2
#undef BDB_EMU_VECTOR_FIELDS_4

inline constexpr float2 make_float2(float x, float y) { return {x, y}; }
inline constexpr float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline constexpr double2 make_double2(double x, double y) { return {x, y}; }
inline constexpr int2 make_int2(int x, int y) { return {x, y}; }
inline constexpr int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline constexpr uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

namespace bdb_emu {

// The stream type of emulated launches: every launch runs synchronously on the calling thread.
struct Stream {};

namespace detail {

inline std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  return buf;
}

inline std::string site(const std::source_location& loc) {
  const char* file = loc.file_name();
  const char* slash = std::strrchr(file, '/');
  return format("%s:%u", slash ? slash + 1 : file, static_cast<unsigned>(loc.line()));
}

inline bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() && std::strcmp(a.file_name(), b.file_name()) == 0;
}

inline std::string demangled_symbol(const void* address) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_sname == nullptr) return "<kernel>";
  int status = 0;
  char* name = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
  std::string out = (status == 0 && name != nullptr) ? name : info.dli_sname;
  std::free(name);
  return out;
}

// Thrown inside a kernel thread to unwind it out of a block that the emulator abandoned. Not a
// std::exception, so kernel code cannot swallow it by accident.
struct BlockAborted {};

enum class CollectiveKind { shuffle, vote, syncwarp };

// Each thread waits on its own waker, so completing a barrier releases the waiters one by one
// instead of waking them all onto the block mutex at once (a 256-thread herd on 2 cores).
// How a waiting thread gives way under the fiber executor (see FiberExecutor).
struct FiberHooks {
  virtual void block_current() = 0;
  virtual void make_runnable(int fiber) = 0;
};

struct Waker {
  enum State { waiting, released, aborted };
  std::mutex m;
  std::condition_variable cv;
  State state = waiting;
  FiberHooks* fibers = nullptr;  // set when this thread is a fiber
  int fiber = -1;

  void arm() {
    std::lock_guard<std::mutex> lock(m);
    state = waiting;
  }
  void wake(State s) {
    if (fibers != nullptr) {  // one OS thread runs every fiber: no lock, never held across a switch
      state = s;
      fibers->make_runnable(fiber);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(m);
      state = s;
    }
    cv.notify_one();
  }
  State wait() {
    if (fibers != nullptr) {
      while (state == waiting) fibers->block_current();
      return state;
    }
    std::unique_lock<std::mutex> lock(m);
    cv.wait(lock, [&] { return state != waiting; });
    return state;
  }
};

inline void wake_all(std::vector<Waker*>& wakers, Waker::State s) {
  for (Waker* w : wakers) w->wake(s);
  wakers.clear();
}

struct WarpRound {
  CollectiveKind kind;
  unsigned mask = 0;
  unsigned arrived = 0;  // lanes that reached this rendezvous
  bool complete = false;
  int readers_left = 0;  // arrived lanes that have not yet taken their result
  int waiters = 0;       // arrived lanes blocked until completion
  std::vector<Waker*> wakers;
  const char* op = "";
  std::source_location where;
  alignas(16) unsigned char values[32][16];
};

struct Warp {
  unsigned existing = 0;  // lanes that exist in this block
  unsigned live = 0;      // lanes that have not returned
  std::vector<std::unique_ptr<WarpRound>> rounds;
};

constexpr int kMaxThreadsPerBlock = 1024;
constexpr int kMaxWarps = kMaxThreadsPerBlock / 32;

// The state of the block that is running. One mutex guards every barrier and warp collective of
// the block, which lets the emulator see a deadlock the moment the last live thread starts waiting.
struct Block {
  std::mutex m;
  uint3 index{0, 0, 0};
  int threads = 0;
  int live = 0;
  int waiting = 0;  // threads blocked in a collective that has not completed
  bool aborted = false;
  std::string error;
  const void* kernel = nullptr;
  dim3 grid, block;

  // __syncthreads (and its _count/_and/_or forms): bar.sync 0 of the block.
  std::vector<Waker*> bar_wakers;
  int bar_arrived = 0;
  int bar_waiters = 0;
  int bar_count = 0;
  unsigned long long bar_generation = 0;
  int bar_result_count = 0;
  int bar_result_arrived = 0;
  const char* bar_op = "";
  std::source_location bar_where;

  Warp warps[kMaxWarps];

  void reset(uint3 idx, int nthreads) {
    index = idx;
    threads = nthreads;
    live = nthreads;
    waiting = 0;
    aborted = false;
    error.clear();
    bar_arrived = bar_waiters = bar_count = 0;
    bar_wakers.clear();
    const int nwarps = (nthreads + 31) / 32;
    for (int w = 0; w < kMaxWarps; ++w) {
      const int lanes = w < nwarps ? std::min(32, nthreads - 32 * w) : 0;
      const unsigned mask = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
      warps[w].existing = warps[w].live = mask;
      warps[w].rounds.clear();
    }
  }

  std::string where_am_i() const {
    return format("block (%u,%u,%u) of %s [grid (%u,%u,%u), block (%u,%u,%u)]", index.x, index.y, index.z,
                  demangled_symbol(kernel).c_str(), grid.x, grid.y, grid.z, block.x, block.y, block.z);
  }

  // Records the first error, wakes every waiter and unwinds the calling thread.
  [[noreturn]] void fail(const std::string& message) {
    if (error.empty()) error = message + " (in " + where_am_i() + ")";
    aborted = true;
    wake_all(bar_wakers, Waker::aborted);
    for (Warp& w : warps) {
      for (auto& r : w.rounds) wake_all(r->wakers, Waker::aborted);
    }
    throw BlockAborted{};
  }

  void throw_if_aborted() const {
    if (aborted) throw BlockAborted{};
  }

  std::string describe_waiters() const {
    std::string out;
    if (bar_arrived > 0) {
      out += format("; %d thread(s) wait in %s at %s", bar_arrived, bar_op, site(bar_where).c_str());
    }
    for (int w = 0; w < kMaxWarps; ++w) {
      for (const auto& r : warps[w].rounds) {
        if (r->complete) continue;
        out += format("; warp %d: lanes 0x%08x wait in %s(mask 0x%08x) at %s for lanes 0x%08x", w, r->arrived,
                      r->op, r->mask, site(r->where).c_str(), (r->mask & warps[w].live) & ~r->arrived);
      }
    }
    out += format("; %d of %d thread(s) have returned", threads - live, threads);
    return out;
  }

  // Called with the lock held by a thread about to wait.
  void check_deadlock() {
    if (live > 0 && waiting == live) {
      fail("deadlock: every live thread of the block waits and none can proceed" + describe_waiters());
    }
  }

  void complete_barrier() {
    bar_result_count = bar_count;
    bar_result_arrived = bar_arrived;
    waiting -= bar_waiters;
    bar_arrived = bar_waiters = bar_count = 0;
    ++bar_generation;
    wake_all(bar_wakers, Waker::released);
  }

  bool try_complete(const Warp& w, WarpRound& r) {
    if (r.complete || ((r.mask & w.live) & ~r.arrived) != 0) return false;
    r.complete = true;
    r.readers_left = std::popcount(r.arrived);
    waiting -= r.waiters;
    wake_all(r.wakers, Waker::released);
    return true;
  }

  // A thread returned (or was unwound): it leaves every barrier of the block and of its warp.
  void thread_exit(int warp, int lane) {
    --live;
    Warp& w = warps[warp];
    w.live &= ~(1u << lane);
    if (aborted) return;
    if (bar_arrived > 0 && bar_arrived == live) complete_barrier();
    for (auto& r : w.rounds) try_complete(w, *r);
    if (live > 0 && waiting == live) {
      try {
        fail("deadlock: every live thread of the block waits and none can proceed" + describe_waiters());
      } catch (const BlockAborted&) {
      }
    }
  }
};

struct ThreadState {
  Block* block = nullptr;
  Waker waker;
  int linear = 0;
  int warp = 0;
  int lane = 0;
};

// The emulated thread running on this OS thread: a pool worker's own state, or under the fiber
// executor the state of the fiber that was switched in.
inline thread_local ThreadState* this_thread_ptr = nullptr;
inline ThreadState& this_thread() { return *this_thread_ptr; }

inline Block& current_block(const char* op) {
  Block* b = this_thread_ptr != nullptr ? this_thread_ptr->block : nullptr;
  if (b == nullptr) {
    std::fprintf(stderr, "bdb_emu: %s called outside an emulated kernel\n", op);
    std::abort();
  }
  return *b;
}

// The rendezvous of a warp collective: deposits `size` bytes of `value`, waits for every live lane
// that `mask` names, then returns read(round, lane) (called with the block lock held).
template <class Read>
auto warp_collective(CollectiveKind kind, const char* op, unsigned mask, const void* value, size_t size,
                     const std::source_location& where, Read&& read) {
  Block& b = current_block(op);
  ThreadState& t = this_thread();
  Warp& w = b.warps[t.warp];
  const unsigned bit = 1u << t.lane;
  std::unique_lock<std::mutex> lock(b.m);
  b.throw_if_aborted();
  if ((mask & bit) == 0) {
    b.fail(format("%s at %s: lane %d of warp %d passes mask 0x%08x, which does not name the calling lane", op,
                  site(where).c_str(), t.lane, t.warp, mask));
  }
  WarpRound* r = nullptr;
  for (auto& p : w.rounds) {
    if (!p->complete && p->mask == mask) {
      r = p.get();
      break;
    }
  }
  if (r != nullptr && r->kind != kind) {
    b.fail(format("divergent warp collectives: lane %d of warp %d calls %s at %s while lanes 0x%08x wait in %s "
                  "at %s with the same mask 0x%08x",
                  t.lane, t.warp, op, site(where).c_str(), r->arrived, r->op, site(r->where).c_str(), mask));
  }
  if (r == nullptr) {
    w.rounds.push_back(std::make_unique<WarpRound>());
    r = w.rounds.back().get();
    r->kind = kind;
    r->mask = mask;
    r->op = op;
    r->where = where;
  }
  if (size > 0) std::memcpy(r->values[t.lane], value, size);
  r->arrived |= bit;
  if (!b.try_complete(w, *r)) {
    ++r->waiters;
    ++b.waiting;
    this_thread().waker.arm();
    r->wakers.push_back(&this_thread().waker);
    b.check_deadlock();
    lock.unlock();
    const Waker::State state = this_thread().waker.wait();
    lock.lock();
    if (state == Waker::aborted) throw BlockAborted{};
  }
  auto result = read(*r, t.lane);
  if (--r->readers_left == 0) {
    for (auto it = w.rounds.begin(); it != w.rounds.end(); ++it) {
      if (it->get() == r) {
        w.rounds.erase(it);
        break;
      }
    }
  }
  return result;
}

struct BarrierResult {
  int count;    // threads whose predicate was non-zero
  int arrived;  // threads that took part (the live threads)
};

inline BarrierResult block_barrier(const char* op, int predicate, const std::source_location& where) {
  Block& b = current_block(op);
  std::unique_lock<std::mutex> lock(b.m);
  b.throw_if_aborted();
  if (b.bar_arrived == 0) {
    b.bar_op = op;
    b.bar_where = where;
  } else if (!same_site(b.bar_where, where)) {
    b.fail(format("divergent barrier: thread %d reaches %s at %s while %d thread(s) wait in %s at %s; every live "
                  "thread of a block must reach the same __syncthreads",
                  this_thread().linear, op, site(where).c_str(), b.bar_arrived, b.bar_op, site(b.bar_where).c_str()));
  }
  ++b.bar_arrived;
  b.bar_count += predicate != 0;
  if (b.bar_arrived == b.live) {
    b.complete_barrier();
    return {b.bar_result_count, b.bar_result_arrived};
  }
  ++b.bar_waiters;
  ++b.waiting;
  this_thread().waker.arm();
  b.bar_wakers.push_back(&this_thread().waker);
  b.check_deadlock();
  lock.unlock();
  if (this_thread().waker.wait() == Waker::aborted) throw BlockAborted{};
  // Stable until this thread arrives at the next barrier, which must happen before it is rewritten.
  return {b.bar_result_count, b.bar_result_arrived};
}

// A kernel and its arguments, type-erased for the thread pool.
struct KernelCall {
  const void* kernel = nullptr;  // for messages
  const void* object = nullptr;
  void (*invoke)(const void* object) = nullptr;
};

inline double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  const double s = std::atof(v);
  return s > 0 ? s : fallback;
}

// The body of one emulated thread: its built-in variables, the kernel, and its exit from the block.
inline void run_emulated_thread(ThreadState& t, Block& block, const KernelCall& call, int linear, dim3 bd,
                                uint3 block_index, dim3 grid) {
  threadIdx = uint3{linear % bd.x, (linear / bd.x) % bd.y, linear / (bd.x * bd.y)};
  blockIdx = block_index;
  blockDim = bd;
  gridDim = grid;
  this_thread_ptr = &t;
  t.block = &block;
  t.linear = linear;
  t.warp = linear / 32;
  t.lane = linear % 32;
  std::string error;
  try {
    call.invoke(call.object);
  } catch (const BlockAborted&) {
  } catch (const std::exception& e) {
    int status = 0;
    char* name = abi::__cxa_demangle(typeid(e).name(), nullptr, nullptr, &status);
    error = format("the kernel threw %s: %s", status == 0 && name ? name : typeid(e).name(), e.what());
    std::free(name);
  } catch (...) {
    error = "the kernel threw an exception that is not a std::exception";
  }
  std::lock_guard<std::mutex> lock(block.m);
  if (!error.empty() && block.error.empty()) {
    try {
      block.fail(format("thread %d: %s", linear, error.c_str()));
    } catch (const BlockAborted&) {
    }
  }
  block.thread_exit(t.warp, t.lane);
  t.block = nullptr;
}

// Runs a block's threads as fibers (ucontext) on the calling OS thread, one at a time: a thread
// runs until it waits in a barrier or collective or returns, then the next runnable one resumes.
// Same semantics, error reports and deadlock detection as the thread pool, at the cost of a
// user-space context switch per wait instead of an OS wake-up (orders of magnitude faster on a
// loaded 2-core machine). The default outside sanitizer builds; ThreadSanitizer and AddressSanitizer
// builds use real threads, which is what their checks need.
class FiberExecutor final : public FiberHooks {
 public:
  ~FiberExecutor() {
    for (auto& f : fibers_) munmap(f->stack, stack_bytes_ + page_);
  }

  std::string run_block(Block& block, const KernelCall& call, uint3 index, dim3 grid, dim3 bd, int nthreads) {
    grow(nthreads);
    block_ = &block;
    call_ = &call;
    index_ = index;
    grid_ = grid;
    bd_ = bd;
    queue_.clear();
    for (int i = 0; i < nthreads; ++i) {
      Fiber& f = *fibers_[i];
      f.blocked = false;
      f.done = false;
      f.state.block = nullptr;
      f.state.waker.fibers = this;
      f.state.waker.fiber = i;
      getcontext(&f.ctx);
      f.ctx.uc_stack.ss_sp = f.stack + page_;
      f.ctx.uc_stack.ss_size = stack_bytes_;
      f.ctx.uc_link = &scheduler_;
      const uintptr_t self = reinterpret_cast<uintptr_t>(this);
      makecontext(&f.ctx, reinterpret_cast<void (*)()>(&FiberExecutor::entry), 3,
                  static_cast<unsigned>(self >> 32), static_cast<unsigned>(self & 0xffffffffu), i);
      queue_.push_back(i);
    }
    ThreadState* const saved = this_thread_ptr;
    blockIdx = index;
    blockDim = bd;
    gridDim = grid;
    while (!queue_.empty()) {
      current_ = queue_.front();
      queue_.pop_front();
      // The built-in variables are thread-locals of this OS thread: switch them with the fiber.
      const unsigned linear = static_cast<unsigned>(current_);
      threadIdx = uint3{linear % bd.x, (linear / bd.x) % bd.y, linear / (bd.x * bd.y)};
      this_thread_ptr = &fibers_[current_]->state;
      swapcontext(&scheduler_, &fibers_[current_]->ctx);
    }
    this_thread_ptr = saved;
    for (int i = 0; i < nthreads; ++i) {
      if (!fibers_[i]->done) {  // cannot happen: a stuck block is failed and its waiters released
        std::lock_guard<std::mutex> lock(block.m);
        return "bdb_emu internal error: fiber " + std::to_string(i) + " never finished" +
               block.describe_waiters();
      }
    }
    std::lock_guard<std::mutex> lock(block.m);
    return block.error;
  }

  void block_current() override {
    Fiber& f = *fibers_[current_];
    f.blocked = true;
    swapcontext(&f.ctx, &scheduler_);
  }

  void make_runnable(int fiber) override {
    Fiber& f = *fibers_[fiber];
    if (f.blocked) {
      f.blocked = false;
      queue_.push_back(fiber);
    }
  }

 private:
  struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    ThreadState state;
    bool blocked = false;
    bool done = false;
  };

  static void entry(unsigned hi, unsigned lo, int index) {
    auto* self = reinterpret_cast<FiberExecutor*>((static_cast<uintptr_t>(hi) << 32) | lo);
    Fiber& f = *self->fibers_[index];
    run_emulated_thread(f.state, *self->block_, *self->call_, index, self->bd_, self->index_, self->grid_);
    f.done = true;
    // Returning resumes uc_link, the scheduler.
  }

  void grow(int nthreads) {
    if (page_ == 0) {
      page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      stack_bytes_ = static_cast<size_t>(env_seconds("BDB_EMU_FIBER_STACK_KB", 256.0)) * 1024;
      stack_bytes_ = (stack_bytes_ + page_ - 1) / page_ * page_;
    }
    while (static_cast<int>(fibers_.size()) < nthreads) {
      auto f = std::make_unique<Fiber>();
      // A guard page below each stack turns an overflow into a crash, not silent corruption.
      void* mem = mmap(nullptr, stack_bytes_ + page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (mem == MAP_FAILED) {
        std::fprintf(stderr, "bdb_emu: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(mem, page_, PROT_NONE);
      f->stack = static_cast<char*>(mem);
      fibers_.push_back(std::move(f));
    }
  }

  std::vector<std::unique_ptr<Fiber>> fibers_;
  std::deque<int> queue_;
  ucontext_t scheduler_;
  int current_ = -1;
  size_t page_ = 0, stack_bytes_ = 0;
  Block* block_ = nullptr;
  const KernelCall* call_ = nullptr;
  uint3 index_{0, 0, 0};
  dim3 grid_, bd_;
};

// Which executor runs blocks: real threads under ThreadSanitizer/AddressSanitizer (always), else
// fibers unless BDB_EMU_EXECUTOR=threads.
inline bool use_fibers() {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
  return false;
#else
  static const bool fibers = [] {
    const char* e = std::getenv("BDB_EMU_EXECUTOR");
    return !(e != nullptr && std::strcmp(e, "threads") == 0);
  }();
  return fibers;
#endif
}

// The threads that run a block: worker t runs thread t of every block, so the pool grows to the
// largest block launched and is reused by every later block and launch.
class Pool {
 public:
  ~Pool() { shutdown(); }

  // Runs every block of the grid in order; returns the first error ("" if none).
  std::string run_grid(const KernelCall& call, dim3 grid, dim3 block) {
    const int nthreads = static_cast<int>(block.x * block.y * block.z);
    if (!use_fibers()) grow(nthreads);
    call_ = &call;
    grid_ = grid;
    block_dim_ = block;
    {
      std::lock_guard<std::mutex> lock(block_.m);
      block_.kernel = call.kernel;
      block_.grid = grid;
      block_.block = block;
    }
    for (unsigned z = 0; z < grid.z; ++z) {
      for (unsigned y = 0; y < grid.y; ++y) {
        for (unsigned x = 0; x < grid.x; ++x) {
          std::string error = use_fibers() ? run_block_fibers(uint3{x, y, z}, nthreads)
                                           : run_block(uint3{x, y, z}, nthreads);
          if (!error.empty()) return error;
        }
      }
    }
    return {};
  }

  void shutdown() {
    for (auto& w : workers_) {
      {
        std::lock_guard<std::mutex> lock(w->m);
        w->stop = true;
      }
      w->cv.notify_one();
    }
    for (auto& w : workers_) {
      if (w->thread.joinable()) w->thread.join();
    }
    workers_.clear();
  }

 private:
  struct Worker {
    std::mutex m;
    std::condition_variable cv;
    bool has_work = false;
    bool stop = false;
    std::thread thread;
  };

  void grow(int nthreads) {
    while (static_cast<int>(workers_.size()) < nthreads) {
      const int linear = static_cast<int>(workers_.size());
      workers_.push_back(std::make_unique<Worker>());
      Worker* w = workers_.back().get();
      w->thread = std::thread([this, w, linear] { worker_loop(*w, linear); });
    }
  }

  std::string run_block_fibers(uint3 index, int nthreads) {
    {
      std::lock_guard<std::mutex> lock(block_.m);
      block_.reset(index, nthreads);
    }
    return fibers_.run_block(block_, *call_, index, grid_, block_dim_, nthreads);
  }

  std::string run_block(uint3 index, int nthreads) {
    {
      std::lock_guard<std::mutex> lock(block_.m);
      block_.reset(index, nthreads);
    }
    block_index_ = index;
    {
      std::lock_guard<std::mutex> lock(done_m_);
      remaining_ = nthreads;
    }
    // Each worker is started through its own mutex, so the start gives a worker no happens-before
    // edge to any other worker: ThreadSanitizer sees the threads of a block as truly concurrent.
    for (int t = 0; t < nthreads; ++t) {
      Worker& w = *workers_[t];
      {
        std::lock_guard<std::mutex> lock(w.m);
        w.has_work = true;
      }
      w.cv.notify_one();
    }
    std::unique_lock<std::mutex> lock(done_m_);
    const double watchdog = env_seconds("BDB_EMU_WATCHDOG_S", 300.0);
    if (!done_cv_.wait_for(lock, std::chrono::duration<double>(watchdog), [&] { return remaining_ == 0; })) {
      std::string state;
      {
        std::lock_guard<std::mutex> block_lock(block_.m);
        state = block_.where_am_i() + block_.describe_waiters();
      }
      std::fprintf(stderr,
                   "bdb_emu: watchdog: %s has not finished after %.0f s (BDB_EMU_WATCHDOG_S); %d thread(s) still "
                   "run outside any barrier (an endless loop, or a wait for another block, which never runs "
                   "concurrently in the emulator). Aborting.\n",
                   state.c_str(), watchdog, remaining_);
      std::fflush(stderr);
      std::abort();
    }
    std::lock_guard<std::mutex> block_lock(block_.m);
    return block_.error;
  }

  void worker_loop(Worker& w, int linear) {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(w.m);
        w.cv.wait(lock, [&] { return w.has_work || w.stop; });
        if (w.stop) return;
        w.has_work = false;
      }
      run_thread(linear);
      std::lock_guard<std::mutex> lock(done_m_);
      if (--remaining_ == 0) done_cv_.notify_one();
    }
  }

  void run_thread(int linear) {
    thread_local ThreadState state;
    run_emulated_thread(state, block_, *call_, linear, block_dim_, block_index_, grid_);
  }

  std::vector<std::unique_ptr<Worker>> workers_;
  FiberExecutor fibers_;
  Block block_;
  const KernelCall* call_ = nullptr;
  dim3 grid_, block_dim_;
  uint3 block_index_{0, 0, 0};
  std::mutex done_m_;
  std::condition_variable done_cv_;
  int remaining_ = 0;
};

struct Runtime {
  std::mutex launch_mutex;  // one launch at a time
  Pool pool;
};

inline Runtime*& runtime_slot() {
  static Runtime* runtime = nullptr;
  return runtime;
}

// Created on first use and never destroyed while the process runs (worker threads stay parked); a
// forked child starts a fresh one, since the parent's workers do not exist there.
inline Runtime& runtime() {
  static std::once_flag once;
  std::call_once(once, [] {
    runtime_slot() = new Runtime;
    pthread_atfork(nullptr, nullptr, [] { runtime_slot() = new Runtime; });
  });
  return *runtime_slot();
}

inline thread_local std::string last_error;

inline void record_error(const std::string& message) {
  if (last_error.empty()) last_error = message;
}

template <class Bound>
void invoke_bound(const void* object) {
  static_cast<const Bound*>(object)->call();
}

inline bool check_launch_shape(const void* kernel, dim3 grid, dim3 block) {
  const unsigned long long threads = 1ULL * block.x * block.y * block.z;
  const char* problem = nullptr;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) {
    problem = "a grid or block dimension is 0";
  } else if (block.x > 1024 || block.y > 1024 || block.z > 64) {
    problem = "block dimensions exceed (1024, 1024, 64)";
  } else if (threads > static_cast<unsigned long long>(kMaxThreadsPerBlock)) {
    problem = "more than 1024 threads per block";
  } else if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u) {
    problem = "grid dimensions exceed (2^31-1, 65535, 65535)";
  }
  if (problem == nullptr) return true;
  record_error(format("invalid configuration argument: launch of %s with grid (%u,%u,%u), block (%u,%u,%u): %s",
                      demangled_symbol(kernel).c_str(), grid.x, grid.y, grid.z, block.x, block.y, block.z,
                      problem));
  return false;
}

// Launch recording: see bdb_emu::start_launch_recording below.
enum class LaunchRecording { off = 0, record = 1, record_only = 2 };

struct LaunchRecord {
  std::string kernel;  // demangled, with template arguments
  dim3 grid, block;
};

struct LaunchLog {
  std::mutex m;
  LaunchRecording mode = LaunchRecording::off;
  std::vector<LaunchRecord> records;
};

// One log per process (an inline function's static is shared by every translation unit).
inline LaunchLog& launch_log() {
  static LaunchLog log;
  return log;
}

// Records a valid launch when recording is on; returns whether the grid should also run.
inline bool record_launch(const void* kernel, dim3 grid, dim3 block) {
  LaunchLog& log = launch_log();
  std::lock_guard<std::mutex> lock(log.m);
  if (log.mode == LaunchRecording::off) return true;
  log.records.push_back(LaunchRecord{demangled_symbol(kernel), grid, block});
  return log.mode == LaunchRecording::record;
}

inline void run_launch(const KernelCall& call, dim3 grid, dim3 block) {
  if (!check_launch_shape(call.kernel, grid, block)) return;
  if (!record_launch(call.kernel, grid, block)) return;
  Runtime& rt = runtime();
  std::lock_guard<std::mutex> lock(rt.launch_mutex);
  const std::string error = rt.pool.run_grid(call, grid, block);
  if (!error.empty()) record_error(error);
}

}  // namespace detail

// The emulated kernel<<<grid, block, 0, stream>>>(args...): converts the arguments to the kernel's
// parameter types (as a launch does), runs the whole grid and returns when it is done. Errors go to
// get_last_error(), as a launch error goes to cudaGetLastError().
template <class... Params, class StreamT, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, const StreamT& /*stream*/, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
  struct Bound {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> params;
    // Every thread gets its own copy of the parameters, as on the GPU.
    void call() const {
      std::apply([this](const auto&... p) { kernel(p...); }, params);
    }
  };
  const Bound bound{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  detail::KernelCall call;
  call.kernel = reinterpret_cast<const void*>(kernel);
  call.object = &bound;
  call.invoke = &detail::invoke_bound<Bound>;
  detail::run_launch(call, grid, block);
}

// Starts recording every launch (kernel, grid, block) that passes the shape check, dropping what
// an earlier recording left. With LaunchRecording::record_only the launches are recorded and not
// run, so a test can audit the launch shapes of full-size problems that the emulator could not
// execute in reasonable time (the outputs are then left unwritten).
inline void start_launch_recording(detail::LaunchRecording mode) {
  detail::LaunchLog& log = detail::launch_log();
  std::lock_guard<std::mutex> lock(log.m);
  log.mode = mode;
  log.records.clear();
}

// Stops recording and returns the launches recorded since start_launch_recording, in order.
inline std::vector<detail::LaunchRecord> stop_launch_recording() {
  detail::LaunchLog& log = detail::launch_log();
  std::lock_guard<std::mutex> lock(log.m);
  log.mode = detail::LaunchRecording::off;
  return std::move(log.records);
}

// Returns and clears the first error the emulator recorded on this thread since the last call.
inline std::string get_last_error() {
  std::string e = std::move(detail::last_error);
  detail::last_error.clear();
  return e;
}

inline const std::string& peek_last_error() { return detail::last_error; }

// Joins the worker threads (optional; a later launch starts new ones). Drivers call it before exit.
inline void shutdown_thread_pool() {
  detail::Runtime& rt = detail::runtime();
  std::lock_guard<std::mutex> lock(rt.launch_mutex);
  rt.pool.shutdown();
}

}  // namespace bdb_emu

// ---------------------------------------------------------------------------------------------
// Barriers, warp collectives
// ---------------------------------------------------------------------------------------------
inline void __syncthreads(std::source_location where = std::source_location::current()) {
  ::bdb_emu::detail::block_barrier("__syncthreads", 0, where);
}
inline int __syncthreads_count(int predicate, std::source_location where = std::source_location::current()) {
  return ::bdb_emu::detail::block_barrier("__syncthreads_count", predicate, where).count;
}
inline int __syncthreads_and(int predicate, std::source_location where = std::source_location::current()) {
  const auto r = ::bdb_emu::detail::block_barrier("__syncthreads_and", predicate, where);
  return r.count == r.arrived;
}
inline int __syncthreads_or(int predicate, std::source_location where = std::source_location::current()) {
  return ::bdb_emu::detail::block_barrier("__syncthreads_or", predicate, where).count > 0;
}

inline void __syncwarp(unsigned mask = 0xffffffffu, std::source_location where = std::source_location::current()) {
  ::bdb_emu::detail::warp_collective(::bdb_emu::detail::CollectiveKind::syncwarp, "__syncwarp", mask, nullptr, 0,
                                     where, [](const auto&, int) { return 0; });
}

namespace bdb_emu::detail {

enum class ShuffleMode { idx, up, down, bfly };

// The source lane of shfl.sync as PTX defines it (c = ((32 - width) << 8) | clamp): lanes read
// within their width-sized segment; a source past the segment (down, xor) or before it (up) gives
// the caller its own value.
inline int shuffle_source(ShuffleMode mode, int lane, int b, int width) {
  const int segmask = (32 - width) & 31;
  const int clamp = mode == ShuffleMode::up ? 0 : 31;
  const int min_lane = lane & segmask;
  const int max_lane = min_lane | (clamp & ~segmask);
  int j = lane;
  bool in_range = true;
  switch (mode) {
    case ShuffleMode::idx:
      j = min_lane | (b & ~segmask & 31);
      in_range = j <= max_lane;
      break;
    case ShuffleMode::up:
      j = lane - b;
      in_range = j >= max_lane;
      break;
    case ShuffleMode::down:
      j = lane + b;
      in_range = j <= max_lane;
      break;
    case ShuffleMode::bfly:
      j = lane ^ (b & 31);
      in_range = j <= max_lane;
      break;
  }
  return in_range ? j : lane;
}

template <class T>
T shuffle(const char* op, ShuffleMode mode, unsigned mask, T var, int b, int width,
          const std::source_location& where) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 16,
                "warp shuffles exchange trivially copyable values of at most 16 bytes");
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    Block& blk = current_block(op);
    std::lock_guard<std::mutex> lock(blk.m);
    blk.fail(format("%s at %s: width %d is not a power of two in [1, 32]", op, site(where).c_str(), width));
  }
  return warp_collective(CollectiveKind::shuffle, op, mask, &var, sizeof(T), where,
                         [&](const WarpRound& r, int lane) -> T {
                           const int src = shuffle_source(mode, lane, b, width);
                           const unsigned src_bit = 1u << src;
                           if ((r.arrived & src_bit) == 0) {
                             Block& blk = *this_thread().block;
                             const Warp& w = blk.warps[this_thread().warp];
                             const char* why = (w.existing & src_bit) == 0 ? "does not exist in this block"
                                               : (w.live & src_bit) == 0  ? "has already returned"
                                               : (r.mask & src_bit) == 0  ? "is not named in the mask"
                                                                          : "did not take part";
                             blk.fail(format("%s at %s: lane %d of warp %d reads lane %d, which %s (mask 0x%08x)",
                                             op, site(where).c_str(), lane, this_thread().warp, src, why, r.mask));
                           }
                           T out;
                           std::memcpy(&out, r.values[src], sizeof(T));
                           return out;
                         });
}

inline unsigned vote(const char* op, unsigned mask, int predicate, const std::source_location& where,
                     unsigned* participants) {
  const int p = predicate != 0;
  return warp_collective(CollectiveKind::vote, op, mask, &p, sizeof(p), where,
                         [&](const WarpRound& r, int) {
                           unsigned ballot = 0;
                           for (int l = 0; l < 32; ++l) {
                             int v = 0;
                             if (r.arrived & (1u << l)) std::memcpy(&v, r.values[l], sizeof(v));
                             if (v) ballot |= 1u << l;
                           }
                           *participants = r.arrived;
                           return ballot;
                         });
}

}  // namespace bdb_emu::detail

template <class T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize,
              std::source_location where = std::source_location::current()) {
  return ::bdb_emu::detail::shuffle("__shfl_sync", ::bdb_emu::detail::ShuffleMode::idx, mask, var, srcLane, width,
                                    where);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location where = std::source_location::current()) {
  return ::bdb_emu::detail::shuffle("__shfl_up_sync", ::bdb_emu::detail::ShuffleMode::up, mask, var,
                                    static_cast<int>(delta), width, where);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location where = std::source_location::current()) {
  return ::bdb_emu::detail::shuffle("__shfl_down_sync", ::bdb_emu::detail::ShuffleMode::down, mask, var,
                                    static_cast<int>(delta), width, where);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize,
                  std::source_location where = std::source_location::current()) {
  return ::bdb_emu::detail::shuffle("__shfl_xor_sync", ::bdb_emu::detail::ShuffleMode::bfly, mask, var, laneMask,
                                    width, where);
}

inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location where = std::source_location::current()) {
  unsigned participants = 0;
  return ::bdb_emu::detail::vote("__ballot_sync", mask, predicate, where, &participants);
}
inline int __any_sync(unsigned mask, int predicate, std::source_location where = std::source_location::current()) {
  unsigned participants = 0;
  return ::bdb_emu::detail::vote("__any_sync", mask, predicate, where, &participants) != 0;
}
inline int __all_sync(unsigned mask, int predicate, std::source_location where = std::source_location::current()) {
  unsigned participants = 0;
  const unsigned ballot = ::bdb_emu::detail::vote("__all_sync", mask, predicate, where, &participants);
  return ballot == participants;
}
// The lanes of the caller's warp that have not returned (the emulator has no divergence to report).
inline unsigned __activemask() {
  auto& b = ::bdb_emu::detail::current_block("__activemask");
  std::lock_guard<std::mutex> lock(b.m);
  return b.warps[::bdb_emu::detail::this_thread().warp].live;
}

// ---------------------------------------------------------------------------------------------
// Atomics (real std::atomic_ref operations, which ThreadSanitizer understands)
// ---------------------------------------------------------------------------------------------
namespace bdb_emu::detail {
template <class T, class Op>
T atomic_update(T* address, Op op) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (!ref.compare_exchange_weak(old, op(old))) {
  }
  return old;
}
}  // namespace bdb_emu::detail

template <class T>
T atomicAdd(T* address, std::type_identity_t<T> val) {
  if constexpr (std::is_arithmetic_v<T>) {
    return std::atomic_ref<T>(*address).fetch_add(val);
  } else {
    return ::bdb_emu::detail::atomic_update(address, [&](T old) { return static_cast<T>(old + val); });
  }
}
template <class T>
T atomicSub(T* address, std::type_identity_t<T> val) {
  return std::atomic_ref<T>(*address).fetch_sub(val);
}
template <class T>
T atomicMax(T* address, std::type_identity_t<T> val) {
  return ::bdb_emu::detail::atomic_update(address, [&](T old) { return old < val ? val : old; });
}
template <class T>
T atomicMin(T* address, std::type_identity_t<T> val) {
  return ::bdb_emu::detail::atomic_update(address, [&](T old) { return val < old ? val : old; });
}
template <class T>
T atomicExch(T* address, std::type_identity_t<T> val) {
  return std::atomic_ref<T>(*address).exchange(val);
}
template <class T>
T atomicCAS(T* address, std::type_identity_t<T> compare, std::type_identity_t<T> val) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);
  return compare;  // the old value either way
}
template <class T>
T atomicAnd(T* address, std::type_identity_t<T> val) {
  return std::atomic_ref<T>(*address).fetch_and(val);
}
template <class T>
T atomicOr(T* address, std::type_identity_t<T> val) {
  return std::atomic_ref<T>(*address).fetch_or(val);
}
template <class T>
T atomicXor(T* address, std::type_identity_t<T> val) {
  return std::atomic_ref<T>(*address).fetch_xor(val);
}
inline unsigned atomicInc(unsigned* address, unsigned val) {
  return ::bdb_emu::detail::atomic_update(address, [&](unsigned old) { return old >= val ? 0u : old + 1u; });
}
inline unsigned atomicDec(unsigned* address, unsigned val) {
  return ::bdb_emu::detail::atomic_update(
      address, [&](unsigned old) { return (old == 0u || old > val) ? val : old - 1u; });
}
// Blocks never overlap in the emulator, so the _block and _system scopes are the device scope.
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wtsan"
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }
#pragma GCC diagnostic pop

// ---------------------------------------------------------------------------------------------
// Math and bit intrinsics (the standard float functions come from <math.h>)
// ---------------------------------------------------------------------------------------------
// CUDA's min/max: exact overloads for each type, the usual arithmetic conversions for mixed types.
#define BDB_EMU_MIN_MAX(T)                            \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
BDB_EMU_MIN_MAX(int)
BDB_EMU_MIN_MAX(unsigned int)
BDB_EMU_MIN_MAX(long)
BDB_EMU_MIN_MAX(unsigned long)
BDB_EMU_MIN_MAX(long long)
BDB_EMU_MIN_MAX(unsigned long long)
BDB_EMU_MIN_MAX(float)
BDB_EMU_MIN_MAX(double)
#undef BDB_EMU_MIN_MAX
template <class A, class B>
  requires(std::is_arithmetic_v<A> && std::is_arithmetic_v<B> && !std::is_same_v<A, B>)
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return min(static_cast<C>(a), static_cast<C>(b));
}
template <class A, class B>
  requires(std::is_arithmetic_v<A> && std::is_arithmetic_v<B> && !std::is_same_v<A, B>)
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return max(static_cast<C>(a), static_cast<C>(b));
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline int __ffsll(long long x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned long long>(x)) + 1; }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline long long clock64() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
inline void __nanosleep(unsigned ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); }
[[noreturn]] inline void __trap() { throw std::runtime_error("__trap() called in a kernel"); }
// BDB_DEVICE_ASSERT (cuda/device_prelude.h) under the emulator: the launch fails with the message,
// as a device-side assert fails the kernel on a GPU.
namespace bdb_emu {
[[noreturn]] inline void device_assert_failed(const char* condition, const char* message, const char* file,
                                              int line) {
  throw std::runtime_error(detail::format("device-side assert triggered: %s (%s) at %s:%d", message, condition,
                                          file, line));
}
}  // namespace bdb_emu

#ifndef CUDART_INF_F
#define CUDART_INF_F INFINITY
#define CUDART_INF (static_cast<double>(INFINITY))
#endif
