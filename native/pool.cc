// The task pool behind parallelTasks (engine.h): the calling thread and omp_get_max_threads() − 1
// helper threads take tasks 0..n−1 from one atomic counter, and the caller waits only for tasks
// that were taken, never for a helper that has not woken up yet. OpenMP's fork/join instead waits
// at its barrier for every thread of the team: on the shared 2-core machine a descheduled worker
// cost 0.1-0.3 ms per kernel call, more than a whole decode-size GEMM. Compiled for the baseline
// target (not in an isa_*.cc file), once for all instruction sets.
#include "engine.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace red {
namespace {

static inline void cpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Spins a helper makes (each a pause, tens of ns) waiting for the next job before it sleeps: enough
// to bridge the gaps between back-to-back kernel calls, short enough not to hold a shared core.
constexpr int kSpins = 4000;

// Task index of a ticket that no task can be claimed from (≥ any total: jobs have < 2^32 − 1 tasks).
constexpr uint64_t kClosed = 0xffffffffu;

struct Pool {
  // (generation << 32) | next task: a task is claimed by a compare-exchange that also checks the
  // generation, so a helper that wakes late cannot claim a task of a finished or newer job.
  std::atomic<uint64_t> ticket{0};
  std::atomic<uint32_t> generation{0};
  std::atomic<int64_t> done{0};  // tasks of the current job finished
  std::atomic<int64_t> total{0};
  std::atomic<void (*)(void*, i64)> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  std::atomic<int> sleepers{0};
  std::mutex sleepMutex;
  std::condition_variable wake;
  std::mutex callers;  // one job at a time; a concurrent caller runs its tasks alone
  int helpers = 0;
  // Test hook (RED_POOL_TEST_DELAY_US): on every job the caller sleeps this long after
  // publishing total and before opening the ticket — the window a preempted caller left open to a
  // stale helper before that race was fixed — so test/engine/native.test.ts can hit it every time.
  int testDelayUs = 0;

  // Takes and runs tasks of job `g` until none is left.
  void work(uint32_t g) {
    for (;;) {
      uint64_t t = ticket.load(std::memory_order_acquire);
      if ((uint32_t)(t >> 32) != g) return;
      const i64 task = (i64)(t & 0xffffffffu);
      // Acquire, paired with run(): a helper that sees the next job's total also sees the ticket
      // that run() closed before storing it, so its compare-exchange below fails.
      if (task >= total.load(std::memory_order_acquire)) return;
      if (!ticket.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel)) continue;
      // Job g cannot finish (and fn/ctx cannot change) before this task is counted done.
      fn.load(std::memory_order_relaxed)(ctx.load(std::memory_order_relaxed), task);
      done.fetch_add(1, std::memory_order_release);
    }
  }

  void helperLoop() {
    uint32_t seen = 0;
    for (;;) {
      uint32_t g = generation.load(std::memory_order_acquire);
      for (int i = 0; i < kSpins && g == seen; ++i) {
        cpuRelax();
        g = generation.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(sleepMutex);
        sleepers.fetch_add(1);  // seq_cst, paired with run(): either it sees us or we see its job
        wake.wait(lock, [&] { return generation.load() != seen; });
        sleepers.fetch_sub(1);
        g = generation.load(std::memory_order_acquire);
      }
      seen = g;
      work(g);
    }
  }

  void run(i64 n, void (*f)(void*, i64), void* c) {
    if (helpers == 0 || n == 1 || !callers.try_lock()) {
      for (i64 i = 0; i < n; ++i) f(c, i);
      return;
    }
    const uint32_t g = generation.load(std::memory_order_relaxed) + 1;
    // Close the counter BEFORE the new total is visible. When the previous job ended the ticket
    // still read (g − 1, n_prev); a helper that loaded it, was preempted, and then read this job's
    // larger total passed the `task < total` test, and its compare-exchange on the unchanged
    // ticket succeeded: it ran task n_prev with a mix of the old and new fn/ctx (the old ctx lives
    // on a returned caller's stack) and counted it in the new job's `done`, so this caller could
    // return while one of its tasks still ran — the demo's one-off segmentation fault.
    ticket.store(((uint64_t)g << 32) | kClosed, std::memory_order_relaxed);
    fn.store(f, std::memory_order_relaxed);
    ctx.store(c, std::memory_order_relaxed);
    total.store(n, std::memory_order_release);  // after the close (see work())
    done.store(0, std::memory_order_relaxed);
    if (testDelayUs > 0) std::this_thread::sleep_for(std::chrono::microseconds(testDelayUs));
    ticket.store((uint64_t)g << 32, std::memory_order_release);
    generation.store(g);  // seq_cst
    if (sleepers.load() > 0) {
      { std::lock_guard<std::mutex> lock(sleepMutex); }
      wake.notify_all();
    }
    work(g);
    // Only tasks a helper claimed are left; if one is slow (its core taken by another process),
    // yield now and then rather than spin against it on a machine with few cores.
    for (int spins = 0; done.load(std::memory_order_acquire) < n; ++spins) {
      if (spins % 1024 == 1023) std::this_thread::yield();
      else cpuRelax();
    }
    callers.unlock();
  }
};

Pool& pool() {
  // Never destroyed: the helpers are detached and block forever once the process stops using them.
  static Pool* p = [] {
    Pool* q = new Pool;
    q->helpers = std::max(0, omp_get_max_threads() - 1);
    if (const char* d = std::getenv("RED_POOL_TEST_DELAY_US")) q->testDelayUs = std::atoi(d);
    for (int i = 0; i < q->helpers; ++i) std::thread([q] { q->helperLoop(); }).detach();
    return q;
  }();
  return *p;
}

}  // namespace

void runTasks(i64 n, void (*fn)(void* ctx, i64 task), void* ctx) {
  if (n <= 0) return;
  pool().run(n, fn, ctx);
}

}  // namespace red
