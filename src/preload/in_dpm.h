// Marks a thread that is inside libdpm for the preload hook. libdpm reaches the daemon with the
// same socket calls the hook defines (socket, connect, sendmsg, close ...); while a thread is
// inside it, the hook hands every call straight to the C library.
#ifndef DPM_PRELOAD_IN_DPM_H_
#define DPM_PRELOAD_IN_DPM_H_

namespace dpm::preload {

namespace internal {
// initial-exec: the hook is loaded at program start, so its TLS is static and the check is a
// plain load (no __tls_get_addr call on every read and write).
extern thread_local bool t_in_dpm __attribute__((tls_model("initial-exec")));
}

/// True while this thread runs libdpm code for the hook.
inline bool InDpm() { return internal::t_in_dpm; }

/// Holds the mark for a scope (nests).
class InDpmScope {
 public:
  InDpmScope() : outer_(internal::t_in_dpm) { internal::t_in_dpm = true; }
  ~InDpmScope() { internal::t_in_dpm = outer_; }
  InDpmScope(const InDpmScope&) = delete;
  InDpmScope& operator=(const InDpmScope&) = delete;

 private:
  bool outer_;
};

}  // namespace dpm::preload

#endif  // DPM_PRELOAD_IN_DPM_H_
