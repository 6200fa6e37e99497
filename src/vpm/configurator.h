// The application configurator of virtual port multiplexing (docs/vpm.md "Configurator"; the
// virtual port multiplexing patent, Fig. 9: "for a given application pathname, at least the AID
// of the application … a list of port numbers that are to be multiplexed … and a list of
// source IP address/port number pairs that should be routed to this AID").
//
// The file is JSON (RFC 8259), read strictly (wire/strict_json.h):
//   {
//     "hidden_ports": "40000-40999",          // where hidden ports come from (inclusive)
//     "queue_timeout_ms": 5000,               // how long a bind waits for a hidden port
//     "ports": {                              // the multiplexed virtual ports
//       "tcp/80":  { "default": "blue" },     // what matches no source rule goes to AID blue
//       "udp/53":  { "default": "refuse" }    // … or is refused (TCP RST, ICMP port unreachable)
//     },
//     "applications": [
//       { "aid": "green", "ports": ["tcp/80", "udp/53"],
//         "programs": ["/usr/sbin/nginx"],     // a socket of this executable gets AID green
//         "users": ["www-data", "1001"],       // … or of this user (name or uid)
//         "sources": ["10.77.1.0/24", "10.77.2.5/32:1024-2047"] }  // new flows from here: green
//     ],
//     "cooperative": {                        // optional: docs/vpm.md "Cooperative mode"
//       "port": 5351,                         // UDP port of the negotiation, both sides
//       "timeout_ms": 3000,                   // client: how long connect() waits for an answer
//       "accept": ["10.77.9.0/24"],           // server: who may negotiate (none: no one)
//       "peers": [                            // client: connections negotiated first
//         { "destinations": ["10.77.9.2/32"], "ports": ["tcp/9000"], "default": "green" } ]
//     }
//   }
// "ports" may be left out when "cooperative" is there (an instance that only connects).
// An application's "ports" may name a peer's port: its socket rules then give the AID a
// connection there negotiates with (the patent's cooperative configurator: "at least the AID of
// the application … a list of port numbers that are to be multiplexed").
// Two kinds of rule, as the patent's non-cooperative mode has them:
//   - socket rules (programs, users): which AID a socket that binds a virtual port gets, when
//     the program did not set one itself (DPM_AID);
//   - source rules: which AID a new inbound flow to a virtual port goes to, by the longest
//     prefix that contains its source address and then the narrowest port range that contains
//     its source port; no match: the port's default.
// Sans-I/O: the caller reads the file and passes its text; the dispatcher is immutable, so a
// reload builds a new one and swaps it (flows that exist keep their AID).
#ifndef DPM_VPM_CONFIGURATOR_H_
#define DPM_VPM_CONFIGURATOR_H_

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vpm/aid.h"

namespace dpm::vpm {

/// The transport protocols a virtual port can be (IP protocol numbers).
enum class Protocol : uint8_t { kTcp = 6, kUdp = 17 };
/// "tcp", "udp".
const char* ProtocolName(Protocol protocol);


/// One virtual port: protocol and port number (host order).
struct PortKey {
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;
  friend bool operator==(const PortKey&, const PortKey&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const PortKey& k) {
    return H::combine(std::move(h), k.protocol, k.port);
  }
};
/// "tcp/80" → PortKey; nullopt for anything else (port 0 included).
std::optional<PortKey> ParsePortKey(absl::string_view text);
/// "tcp/80".
std::string FormatPortKey(const PortKey& key);

/// A source pattern: an IPv4 prefix (host order, the bits past `length` zero) and a range of
/// source ports (inclusive).
struct SourcePattern {
  uint32_t prefix = 0;
  int length = 0;  // 0..32
  uint16_t port_min = 0, port_max = 65535;
};
/// "A.B.C.D", "A.B.C.D/LEN", either with ":PORT" or ":LOW-HIGH". Errors name the problem.
absl::StatusOr<SourcePattern> ParseSourcePattern(absl::string_view text);
/// "A.B.C.D/LEN", with ":PORT" or ":LOW-HIGH" unless the range is all ports (status).
std::string FormatSourcePattern(const SourcePattern& pattern);

/// One application entry of the file.
struct ApplicationRule {
  std::string aid;
  std::vector<PortKey> ports;          // the virtual ports the rules below apply to
  std::vector<std::string> programs;   // absolute executable paths
  std::vector<uid_t> users;            // users (names are resolved by the caller: see ParseConfigurator)
  std::vector<SourcePattern> sources;
};

/// What becomes of a new flow to a virtual port that matches no source rule.
struct PortPolicy {
  PortKey key;
  std::optional<std::string> default_aid;  // nullopt: refuse
};

/// Client side of cooperative mode: connections to these destinations and ports ask the
/// peer's VPM for the hidden port first.
struct CooperativePeer {
  std::vector<SourcePattern> destinations;  // prefixes (no port part)
  std::vector<PortKey> ports;
  std::optional<std::string> default_aid;   // the AID of a socket no rule names (none: EACCES)
};

/// The "cooperative" object of the file.
struct CooperativeConfig {
  bool present = false;
  uint16_t port = 5351;                 // UDP, host order
  uint64_t timeout_ms = 3000;           // client: the whole negotiation, retransmissions included
  std::vector<SourcePattern> accept;    // server: sources that may negotiate (prefixes)
  std::vector<CooperativePeer> peers;   // client
};

/// The whole file.
struct ConfiguratorConfig {
  uint16_t hidden_min = 40000, hidden_max = 40999;  // inclusive, host order
  uint64_t queue_timeout_ms = 5000;
  std::vector<PortPolicy> ports;
  std::vector<ApplicationRule> applications;
  CooperativeConfig cooperative;
};

/// Resolves a user name to a uid (the caller's getpwnam_r; the core does no I/O).
using UserLookup = std::optional<uid_t> (*)(absl::string_view name);

/// Parses the configurator file. Errors (InvalidArgument) name the place: "ports.tcp/80:
/// default 'x y' is not an AID", "applications[1].sources[0]: '10.0.0.0/33' is not a prefix",
/// "applications[0]: port udp/53 is not in ports", "hidden_ports: '9-1' is not LOW-HIGH",
/// "applications[2].users[0]: no user 'nobody2'", "not JSON: …". `users` resolves names that
/// are not all digits (null: only numeric uids are accepted).
absl::StatusOr<ConfiguratorConfig> ParseConfigurator(absl::string_view json_text, UserLookup users = nullptr);

/// The rules compiled for lookups. Immutable once built; copyable.
class Dispatcher {
 public:
  /// An empty dispatcher: no virtual port is multiplexed.
  Dispatcher() = default;
  /// Compiles `config` (as ParseConfigurator returns it; an AID or port it did not check is
  /// taken as it is).
  explicit Dispatcher(const ConfiguratorConfig& config);

  /// The outcome of Dispatch.
  struct Decision {
    enum Kind : uint8_t {
      kNotMultiplexed,  // no such virtual port: the packet is not VPM's
      kRule,            // a source rule matched: `aid`
      kDefault,         // no rule matched: the port's default `aid`
      kRefuse,          // no rule matched and the port refuses
    } kind = kNotMultiplexed;
    absl::string_view aid;  // kRule, kDefault: valid as long as the dispatcher
  };
  /// The AID a new inbound flow from `source`:`source_port` (host order) to virtual port `key`
  /// goes to. Time: at most one hash probe per distinct prefix length among the port's rules
  /// (33 at most), whatever the number of rules; then the port ranges of that one prefix.
  Decision Dispatch(PortKey key, uint32_t source, uint16_t source_port) const;

  /// The AID for a socket of the program at `executable` (absolute path) run by `uid` that
  /// binds virtual port `key`: the first application whose programs name it, else the first
  /// whose users name the uid; nullopt when none does (the caller uses the port's default).
  std::optional<absl::string_view> AidForSocket(PortKey key, absl::string_view executable, uid_t uid) const;

  /// The port's default AID (nullopt: it refuses, or it is not multiplexed).
  std::optional<absl::string_view> DefaultAid(PortKey key) const;

  /// Cooperative mode, client side: the peer entry a connection to `destination` (host order)
  /// on `key` negotiates under, or null when it connects as usual. Linear in the peer entries.
  const CooperativePeer* PeerFor(PortKey key, uint32_t destination) const;
  /// The AID a socket of `executable` run by `uid` negotiates with for `key`: the first
  /// application naming the program, else the user; else the peer entry's default.
  std::optional<absl::string_view> AidForConnect(PortKey key, const CooperativePeer& peer,
                                                 absl::string_view executable, uid_t uid) const;
  /// Cooperative mode, server side: `source` (host order) may negotiate. Linear in "accept".
  bool AcceptsNegotiation(uint32_t source) const;
  const CooperativeConfig& cooperative() const { return cooperative_; }
  /// The file it was compiled from (status lists the rules).
  const ConfiguratorConfig& config() const { return config_; }
  bool Multiplexed(PortKey key) const { return ports_.contains(key); }
  /// Source rules compiled (for status).
  size_t source_rules() const { return source_rules_; }
  uint16_t hidden_min() const { return hidden_min_; }
  uint16_t hidden_max() const { return hidden_max_; }
  uint64_t queue_timeout_ms() const { return queue_timeout_ms_; }

 private:
  struct Range {
    uint16_t min, max;
    uint32_t aid;  // index into aids_
  };
  struct Port {
    std::optional<uint32_t> default_aid;
    uint64_t lengths = 0;  // bit L set: some rule has prefix length L
    std::array<absl::flat_hash_map<uint32_t, std::vector<Range>>, 33> by_length;
    std::vector<std::pair<std::string, uint32_t>> programs;
    std::vector<std::pair<uid_t, uint32_t>> users;
  };
  std::vector<std::string> aids_;
  absl::flat_hash_map<PortKey, Port> ports_;
  absl::flat_hash_map<PortKey, Port> connect_ports_;  // socket rules of cooperative peer ports
  ConfiguratorConfig config_;
  CooperativeConfig cooperative_;
  size_t source_rules_ = 0;
  uint16_t hidden_min_ = 40000, hidden_max_ = 40999;
  uint64_t queue_timeout_ms_ = 5000;
};

}  // namespace dpm::vpm

#endif  // DPM_VPM_CONFIGURATOR_H_
