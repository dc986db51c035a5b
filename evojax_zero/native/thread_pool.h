// The CPU backend's worker threads: one process-wide pool that runs one parallel loop at a
// time. Workers are started once and sleep on a condition variable between loops (no
// spinning), so an idle pool costs no CPU time and a call costs no thread creation.
#ifndef EVOJAX_ZERO_NATIVE_THREAD_POOL_H_
#define EVOJAX_ZERO_NATIVE_THREAD_POOL_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace evojax_zero {

class ThreadPool {
 public:
  // The pool shared by every call of this process (never destroyed: workers may outlive
  // static destruction at exit).
  static ThreadPool& Shared() {
    static ThreadPool* pool = new ThreadPool();
    return *pool;
  }

  // Run body(item) for every item in [0, n) on up to `threads` threads, the caller being one
  // of them; items are claimed `chunk` at a time from a shared counter, so which thread runs
  // an item varies but every item runs exactly once. Returns when all items are done. When
  // another loop is running (XLA runs the custom calls of several devices at once), the
  // caller runs its loop alone rather than oversubscribing the cores.
  void ParallelFor(int64_t threads, int64_t n, int64_t chunk,
                   const std::function<void(int64_t)>& body) {
    if (n <= 0) return;
    chunk = std::max<int64_t>(1, chunk);
    threads = std::max<int64_t>(1, std::min(threads, (n + chunk - 1) / chunk));
    std::unique_lock<std::mutex> busy(loop_mu_, std::try_to_lock);
    if (threads == 1 || !busy.owns_lock()) {
      for (int64_t i = 0; i < n; ++i) body(i);
      return;
    }
    Loop loop{&body, n, chunk, {0}};
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (static_cast<int64_t>(workers_.size()) < threads - 1) {
        const int64_t index = static_cast<int64_t>(workers_.size());
        workers_.emplace_back([this, index] { WorkerMain(index); });
      }
      loop_ = &loop;
      helpers_ = threads - 1;
      pending_ = threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    RunItems(loop);
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return pending_ == 0; });
    loop_ = nullptr;
  }

 private:
  struct Loop {
    const std::function<void(int64_t)>* body;
    int64_t n, chunk;
    std::atomic<int64_t> next;
  };

  ThreadPool() = default;

  static void RunItems(Loop& loop) {
    for (;;) {
      const int64_t start = loop.next.fetch_add(loop.chunk, std::memory_order_relaxed);
      if (start >= loop.n) return;
      const int64_t end = std::min(loop.n, start + loop.chunk);
      for (int64_t i = start; i < end; ++i) (*loop.body)(i);
    }
  }

  void WorkerMain(int64_t index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return generation_ != seen && index < helpers_; });
      seen = generation_;
      Loop* loop = loop_;
      lk.unlock();
      RunItems(*loop);
      lk.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex loop_mu_;  // held by the caller of the running loop
  std::mutex mu_;       // guards the fields below
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Loop* loop_ = nullptr;
  int64_t helpers_ = 0;   // workers taking part in the current loop
  int64_t pending_ = 0;   // of them, those not finished yet
  uint64_t generation_ = 0;
};

}  // namespace evojax_zero

#endif  // EVOJAX_ZERO_NATIVE_THREAD_POOL_H_
