// dpm-run — runs an unmodified, dynamically linked program on a dpm instance: sets the
// environment that libdpm-preload.so reads, puts the library first in LD_PRELOAD and execs
// the program (as proxychains4 or torsocks do). Before the exec it checks that a dpmd answers
// at the API socket, so a missing daemon is one clear line instead of a program whose every
// socket() fails with ENETDOWN. With --tunnel the hook runs in tunnel mode (docs/preload.md
// "Tunnel mode") and the daemon is a `dpmd redirector`.
#include <arpa/inet.h>
#include <limits.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/protocol.h"
#include "api/unix_address.h"
#include "preload/hook_config.h"
#include "vpm/aid.h"
#include "apps/cli_parse.h"
#include "dpm/socket.h"

#ifndef DPM_INSTALL_LIBDIR
#define DPM_INSTALL_LIBDIR "lib"
#endif

namespace {

constexpr char kPreloadName[] = "libdpm-preload.so";

[[noreturn]] void Die(const std::string& message, int code = 1) {
  std::fprintf(stderr, "dpm-run: %s\n", message.c_str());
  std::exit(code);
}

bool Readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

// The absolute path, without "..": LD_PRELOAD is read again by every program the program
// starts, from wherever it has changed directory to, so a relative path would be lost there.
std::string Absolute(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

// The directory this executable is in (from /proc/self/exe, so a symlink to it or a relative
// invocation still finds the library beside the real file).
std::string ExeDir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

// DPM_PRELOAD_LIBRARY, else the build tree's copy beside dpm-run, else the install prefix's
// library directory (<prefix>/bin/dpm-run → <prefix>/<libdir>/libdpm-preload.so).
std::string FindPreload() {
  if (const char* env = std::getenv("DPM_PRELOAD_LIBRARY"); env != nullptr && *env != '\0') {
    if (!Readable(env)) {
      Die(std::string("DPM_PRELOAD_LIBRARY names ") + env + ", which cannot be read: " + std::strerror(errno));
    }
    return Absolute(env);
  }
  const std::string dir = ExeDir();
  std::vector<std::string> tried;
  if (!dir.empty()) {
    for (const std::string& candidate :
         {dir + "/" + kPreloadName, dir + "/../" + DPM_INSTALL_LIBDIR + "/" + kPreloadName}) {
      if (Readable(candidate)) return Absolute(candidate);
      tried.push_back(candidate);
    }
  }
  Die("cannot find " + std::string(kPreloadName) + " (looked at " + absl::StrJoin(tried, " and ") +
      "; set DPM_PRELOAD_LIBRARY to its path)");
}

// Empty when `text` is an IPv4 prefix A.B.C.D/LEN (or A.B.C.D, one address, as the hook reads
// it), else what is wrong with it. The address must be the prefix's network (no host bits),
// as `ip route` wants it, so a typo like 10.1.0.0/8 does not silently mean 10.0.0.0/8.
std::string CheckPrefix(const std::string& text) {
  absl::StatusOr<std::vector<dpm::preload::Ipv4Prefix>> parsed = dpm::preload::ParsePrefixes(text);
  if (!parsed.ok() || parsed->size() != 1) {
    return "'" + text + "' is not an IPv4 prefix A.B.C.D/LEN (LEN 0..32) or address A.B.C.D";
  }
  const dpm::preload::Ipv4Prefix& p = parsed->front();
  if ((p.address & ~p.Mask()) != 0) {
    in_addr net{htonl(p.address & p.Mask())};
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &net, buf, sizeof(buf));
    return "'" + text + "' has host bits set (the network is " + buf + "/" + std::to_string(p.length) + ")";
  }
  return "";
}

std::string Refuses(const std::string& where) {
  return "the dpmd at " + where + " refuses this user (not its user, root or in its --api-group)";
}

// Connects to the API socket and asks for the status, the one request every user may send
// and that changes nothing: no answer means no daemon, EACCES a daemon that refuses us.
// `role`: the dpmd command expected there ("client", or "redirector" in tunnel mode).
void CheckDaemon(const std::string& role) {
  std::string where(dpm_daemon_path(nullptr, 0), '\0');
  dpm_daemon_path(where.data(), where.size() + 1);
  absl::StatusOr<dpm::api::UnixAddress> addr = dpm::api::ParseUnixAddress(where);
  if (!addr.ok()) Die(std::string(addr.status().message()), 2);
  const std::string start = addr->abstract ? "start 'dpmd " + role + "' in this network namespace"
                                           : "start 'dpmd " + role + " --api-socket " + where + "'";
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) Die(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, addr->sockaddr_ptr(), addr->length) != 0) {
    if (errno == EACCES || errno == EPERM) Die(Refuses(where));  // a file socket's mode
    Die("no dpmd answers at " + where + " (" + start + ", or pass --api-socket)");
  }
  std::vector<uint8_t> request = dpm::api::EncodeRequest(dpm::api::StatusRequest{});
  std::vector<uint8_t> buf(dpm::api::kMaxMessage * 16);
  ssize_t n = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  if (n >= 0) n = ::recv(fd, buf.data(), buf.size(), 0);
  ::close(fd);
  if (n <= 0) Die("the program at " + where + " does not answer as a dpmd does (" + start + ")");
  absl::StatusOr<dpm::api::Reply> reply = dpm::api::ParseReply(absl::MakeConstSpan(buf.data(), static_cast<size_t>(n)));
  if (!reply.ok()) Die("the program at " + where + " does not answer as a dpmd does (" + start + ")");
  if (reply->error == EACCES) Die(Refuses(where));  // dpmd's credential check
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "dpm-run: runs an unmodified program on a dpm instance. Its IPv4 TCP and UDP sockets go to the dpmd at the "
      "API socket (libdpm-preload.so in LD_PRELOAD); loopback, other families and the --kernel-net prefixes stay "
      "with the kernel.",
      "dpm-run"};
  app.footer("PROGRAM [ARGS...] follow the options: dpm-run [OPTIONS] [--] PROGRAM [ARGS...]. "
             "Exit status: PROGRAM's; 1 no dpmd or no preload library; 2 bad arguments; 126/127 PROGRAM cannot "
             "be run / not found.");
  std::string api_socket;
  std::string tuple;
  bool fixed_ports = false;
  std::string aid;
  std::vector<std::string> kernel_nets;
  bool tunnel = false;
  std::string tunnel_suffix, tunnel_net;
  app.set_version_flag("--version", "dpm-run " DPM_VERSION);
  app.add_option("--api-socket", api_socket,
                 "dpmd API socket: a file path, or @NAME for an abstract name of this network namespace "
                 "(sets DPM_SOCKET; default: $DPM_SOCKET, else " DPM_DEFAULT_DAEMON_PATH ")");
  app.add_option("--tuple", tuple,
                 "The address every socket gets: the instance's common one, one of its own from the static pool, "
                 "or one leased by DHCP (sets DPM_TUPLE; default common)")
      ->check(CLI::IsMember({"common", "static", "dynamic"}));
  app.add_option("--aid", aid,
                 "Every socket's application ID for virtual port multiplexing: sockets of one AID that bind a "
                 "virtual port of the instance share its connections, another AID gets its own (sets DPM_AID; "
                 "default: the instance's configurator decides)")
      ->type_name("AID");
  app.add_flag("--fixed-ports", fixed_ports,
               "Every socket's port is not replaceable: a DPM gateway keeps it (sets DPM_FIXED_PORTS=1)");
  app.add_option("--kernel-net", kernel_nets,
                 "IPv4 prefix A.B.C.D/LEN (or one address A.B.C.D) whose traffic stays with the kernel; repeat "
                 "or separate with commas. Replaces the default 127.0.0.0/8 (list it too to keep loopback with "
                 "the kernel); '' for none (sets DPM_KERNEL_NETS)")
      ->delimiter(',')
      ->allow_extra_args(false)  // one PREFIX per --kernel-net: `--kernel-net 10.0.0.0/8 curl` runs curl
      ->type_name("PREFIX");
  CLI::Option* tunnel_flag =
      app.add_flag("--tunnel", tunnel,
                   "Tunnel mode: sockets stay with the kernel; names under the pseudo suffix resolve at a 'dpmd "
                   "redirector' and TCP connects to its pseudo addresses go through it (sets DPM_TUNNEL=1, and "
                   "DPM_SOCKET=" +
                       std::string(dpm::preload::kDefaultRedirectorSocket) +
                       " unless --api-socket or $DPM_SOCKET names another)");
  app.add_option("--tunnel-suffix", tunnel_suffix,
                 "The pseudo names' DNS suffix (sets DPM_TUNNEL_SUFFIX; default dpm.internal)")
      ->needs(tunnel_flag)
      ->type_name("SUFFIX");
  app.add_option("--tunnel-net", tunnel_net,
                 "The pseudo addresses' IPv4 prefix, as the redirector has it (sets DPM_TUNNEL_NET; default "
                 "100.64.0.0/10)")
      ->needs(tunnel_flag)
      ->type_name("PREFIX");
  // What only a dpm socket has: in tunnel mode sockets are the kernel's.
  for (const char* stack_only : {"--tuple", "--fixed-ports", "--kernel-net", "--aid"}) tunnel_flag->excludes(stack_only);
  app.prefix_command();  // everything from PROGRAM on is the program's, options included
  if (std::optional<int> done = dpm::apps::ParseCommandLine(app, argc, argv, "dpm-run")) return *done;
  std::vector<std::string> command = app.remaining();
  if (!command.empty() && command.front() == "--") {
    command.erase(command.begin());
  } else if (!command.empty() && command.front().size() > 1 && command.front()[0] == '-') {
    // prefix_command() hands over an unknown option as if it were PROGRAM.
    std::fprintf(stderr,
                 "dpm-run: unknown option %s (see dpm-run --help; put -- before a PROGRAM that begins with '-')\n",
                 command.front().c_str());
    return 2;
  }
  if (command.empty()) {
    std::fprintf(stderr, "dpm-run: no program to run (usage: dpm-run [OPTIONS] -- PROGRAM [ARGS...])\n");
    return 2;
  }

  if (app.count("--kernel-net") > 0) {
    // A lone '' empties the list: every IPv4 destination, loopback included, goes to dpm.
    std::vector<std::string> nets;
    for (const std::string& net : kernel_nets) {
      if (net.empty()) continue;
      if (std::string why = CheckPrefix(net); !why.empty()) Die("bad --kernel-net " + why, 2);
      nets.push_back(net);
    }
    ::setenv("DPM_KERNEL_NETS", absl::StrJoin(nets, ",").c_str(), 1);
  }
  if (!api_socket.empty()) {
    absl::StatusOr<dpm::api::UnixAddress> addr = dpm::api::ParseUnixAddress(api_socket);
    if (!addr.ok()) Die("--api-socket: " + std::string(addr.status().message()), 2);
    ::setenv("DPM_SOCKET", api_socket.c_str(), 1);
  }
  if (!tuple.empty()) ::setenv("DPM_TUPLE", tuple.c_str(), 1);
  if (fixed_ports) ::setenv("DPM_FIXED_PORTS", "1", 1);
  if (!aid.empty()) {
    if (!dpm::vpm::ValidAid(aid)) Die("bad --aid '" + aid + "': 1-32 of letters, digits, '.', '_', '-'", 2);
    ::setenv("DPM_AID", aid.c_str(), 1);
  }
  if (tunnel) {
    if (!tunnel_net.empty()) {
      if (std::string why = CheckPrefix(tunnel_net); !why.empty()) Die("bad --tunnel-net " + why, 2);
    }
    if (!tunnel_suffix.empty() && !dpm::preload::ValidTunnelSuffix(tunnel_suffix)) {
      Die("bad --tunnel-suffix '" + tunnel_suffix +
              "': not a DNS suffix (lower-case labels of a-z, 0-9, '-', joined by dots, no dot at either end)",
          2);
    }
    // The hook's own parser, so what dpm-run accepts the hook reads the same way.
    absl::StatusOr<dpm::preload::TunnelConfig> checked =
        dpm::preload::ParseTunnelConfig("1", tunnel_suffix.c_str(), tunnel_net.c_str());
    if (!checked.ok()) Die(std::string(checked.status().message()), 2);
    ::setenv("DPM_TUNNEL", "1", 1);
    if (!tunnel_suffix.empty()) ::setenv("DPM_TUNNEL_SUFFIX", tunnel_suffix.c_str(), 1);
    if (!tunnel_net.empty()) ::setenv("DPM_TUNNEL_NET", tunnel_net.c_str(), 1);
    const char* env = std::getenv("DPM_SOCKET");
    if (api_socket.empty() && (env == nullptr || *env == '\0')) {
      ::setenv("DPM_SOCKET", dpm::preload::kDefaultRedirectorSocket, 1);
    }
  }

  const std::string preload = FindPreload();
  // ld.so splits LD_PRELOAD at spaces and colons (ld.so(8)), so such a path cannot be given.
  if (preload.find_first_of(" :") != std::string::npos) {
    Die("the preload library's path '" + preload + "' holds a space or ':', which LD_PRELOAD cannot carry");
  }
  CheckDaemon(tunnel ? "redirector" : "client");
  const char* old = std::getenv("LD_PRELOAD");
  const std::string ld_preload = old != nullptr && *old != '\0' ? preload + ":" + old : preload;
  ::setenv("LD_PRELOAD", ld_preload.c_str(), 1);

  std::vector<char*> args;
  for (std::string& a : command) args.push_back(a.data());
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  // As shells and env(1) do: 127 when there is no such program, 126 when it cannot be run.
  const int err = errno;
  std::fprintf(stderr, "dpm-run: cannot run %s: %s\n", command.front().c_str(), std::strerror(err));
  return err == ENOENT || err == ENOTDIR ? 127 : 126;
}
