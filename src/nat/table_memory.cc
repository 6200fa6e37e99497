// The one file of src/nat that makes system calls: HugePageTableMemory's mmap, munmap and
// madvise (nat/table_memory.h).
#include "nat/table_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <new>

namespace dpm::nat {

namespace {

class Heap final : public TableMemory {
 public:
  void* Allocate(size_t bytes, bool zeroed) override {
    void* memory = zeroed ? std::calloc(1, bytes) : std::malloc(bytes);
    if (memory == nullptr) throw std::bad_alloc();
    return memory;
  }
  void Free(void* memory, size_t) override { std::free(memory); }
};

constexpr size_t kHugePage = HugePageTableMemory::kHugePageBytes;
size_t RoundToHugePages(size_t bytes) { return (bytes + kHugePage - 1) / kHugePage * kHugePage; }

}  // namespace

TableMemory& HeapTableMemory() {
  static Heap heap;  // stateless: nothing leaks from one table (or test) to the next
  return heap;
}

void* HugePageTableMemory::Allocate(size_t bytes, bool zeroed) {
  if (bytes < kHugePage) return HeapTableMemory().Allocate(bytes, zeroed);
  const size_t rounded = RoundToHugePages(bytes);
  // One huge page more than needed, trimmed so that the block starts on a 2 MiB boundary.
  void* mapped = mmap(nullptr, rounded + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t at = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t start = (at + kHugePage - 1) & ~(kHugePage - 1);
  if (start > at) munmap(mapped, start - at);
  munmap(reinterpret_cast<void*>(start + rounded), kHugePage - (start - at));
  void* memory = reinterpret_cast<void*>(start);
  // Advice only: without transparent huge pages this fails and nothing changes.
  madvise(memory, rounded, MADV_HUGEPAGE);
  return memory;  // fresh anonymous pages are zero
}

void HugePageTableMemory::Free(void* memory, size_t bytes) {
  if (bytes < kHugePage) {
    HeapTableMemory().Free(memory, bytes);
  } else {
    munmap(memory, RoundToHugePages(bytes));
  }
}

}  // namespace dpm::nat
