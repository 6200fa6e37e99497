// libdpm's own descriptor table, for the preload hook (src/preload/), which is built from the
// same sources: it must learn of descriptors that dup()/dup2()/fcntl(F_DUPFD) made and of
// descriptors the kernel reuses, which libdpm's public calls never see.
#ifndef DPM_LIB_INTERNAL_H_
#define DPM_LIB_INTERNAL_H_

namespace dpm::lib {

/// True when `fd` is a dpm socket of this process (its descriptor, checked by inode, so a
/// number closed behind libdpm's back and reused is not). *tcp (if not null) gets its kind.
/// errno is left as it was.
bool IsDpmSocket(int fd, bool* tcp);
/// `to` now names the same dpm socket as `from` (after dup and friends); nothing if `from` is
/// not one.
void CopyEntry(int from, int to);
/// `fd` no longer names a dpm socket (it was closed, or dup2() replaced it).
void ForgetEntry(int fd);

}  // namespace dpm::lib

#endif  // DPM_LIB_INTERNAL_H_
