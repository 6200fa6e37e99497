// Where the session table's memory comes from (nat/session_table.h): the blocks of its slabs
// and hash indexes are taken from a TableMemory the owner injects, so the table itself does no
// system call.
//
//   HeapTableMemory()    malloc / calloc: the default (unit tests, tools, small tables).
//   HugePageTableMemory  big blocks mapped afresh, 2 MiB-aligned, backed by transparent huge
//                        pages (what `dpmd gateway` uses: a table of millions of entries then
//                        does not miss the TLB on every lookup).
//
// table_memory.cc is the one file of src/nat that makes system calls (mmap, munmap, madvise),
// for HugePageTableMemory only; nothing in the NAT core chooses it.
#ifndef DPM_NAT_TABLE_MEMORY_H_
#define DPM_NAT_TABLE_MEMORY_H_

#include <cstddef>

namespace dpm::nat {

/// A source of big blocks. Implementations must be usable from the one thread that drives the
/// table, and outlive every table given them.
class TableMemory {
 public:
  virtual ~TableMemory() = default;
  /// A block of `bytes` (> 0), aligned at least as malloc aligns; zero-filled when `zeroed`.
  /// Throws std::bad_alloc when there is no memory.
  virtual void* Allocate(size_t bytes, bool zeroed) = 0;
  /// Returns a block Allocate gave, with the `bytes` it was asked for.
  virtual void Free(void* memory, size_t bytes) = 0;
};

/// malloc, or calloc when zeroed; free. Stateless: one instance serves every table.
TableMemory& HeapTableMemory();

/// Blocks of kHugePageBytes or more are mapped afresh (zero-filled; pages backed once touched;
/// freeing returns them to the system), kHugePageBytes-aligned, and the kernel is asked to back
/// them with transparent huge pages (madvise MADV_HUGEPAGE: advice only, without THP nothing
/// changes). Smaller blocks come from the heap, as HeapTableMemory's do. Throws
/// std::bad_alloc when mmap fails. Stateless.
class HugePageTableMemory final : public TableMemory {
 public:
  static constexpr size_t kHugePageBytes = size_t{2} << 20;
  void* Allocate(size_t bytes, bool zeroed) override;
  void Free(void* memory, size_t bytes) override;
};

}  // namespace dpm::nat

#endif  // DPM_NAT_TABLE_MEMORY_H_
