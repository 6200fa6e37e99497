// Packet hooks: code that sees the Stack's IPv4 packets on their way between the link and
// lwIP, inbound (link -> lwIP) and outbound (lwIP -> link), on L3 (TUN) and Ethernet (TAP)
// links alike — the gateway's NAT fast path, DSCP marking per address, a port multiplexer.
// On an Ethernet link the hooks see the IPv4 packet inside the frame; ARP and other
// EtherTypes pass them by.
//
// A hook is an object with one virtual function (no std::function, no allocation per
// packet); a chain holds hooks in `order` (lower first; equal orders in the order they were
// added) and runs them until one takes the packet. Adding a hook returns a HookHandle, and
// the hook stays in the chain until the handle is destroyed or reset. With no hooks, a
// packet costs the chain one emptiness test.
//
// Core thread only, as everything on the Stack.
#ifndef DPM_STACK_PACKET_HOOKS_H_
#define DPM_STACK_PACKET_HOOKS_H_

#include <sys/uio.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "wire/offload.h"

namespace dpm::stack {

/// What a hook does with a packet.
enum class HookAction : uint8_t {
  kPass,  // hand it to the next hook, then to lwIP (inbound) or the link (outbound)
  kTake,  // the hook took it: forwarded it elsewhere, or dropped it (and counted that itself)
};

/// Orders of the hooks this project installs (lower runs first).
namespace hook_order {
inline constexpr int kNatFastPath = 0;  // inbound: the gateway's NAT (everything not for lwIP)
/// Both ways: virtual port multiplexing (stack/port_multiplexer.h), after the NAT, before DSCP.
inline constexpr int kPortMultiplexer = 100;
/// Outbound: DSCP per source address. Late, so that it marks the packet as the hooks
/// before it left it.
inline constexpr int kDscpMarking = 1000;
}  // namespace hook_order

/// Sees each IPv4 packet read from the link that passed the first checks (wire::CheckIpv4:
/// version 4, header and total length inside what was read), before lwIP does.
class InboundHook {
 public:
  virtual ~InboundHook() = default;
  /// `packet`: exactly the IPv4 packet (its total length; link padding cut off), in the
  /// Stack's read buffer, valid only during the call; the hook may rewrite it in place (same
  /// length), and later hooks and lwIP see the rewrite. `offload`: the packet's, from
  /// tun::Link::ReadOffloaded (none on links without offload, always none on Ethernet
  /// links); a packet the chain passes is finished in software before lwIP sees it (checksum
  /// completed, a super-packet cut into MSS-sized segments), so a hook that finishes the
  /// offload itself sets `offload` to none. To keep a packet it takes, the hook copies it.
  virtual HookAction OnInbound(absl::Span<uint8_t> packet, wire::Offload& offload) = 0;
};

/// An IPv4 packet lwIP sends, as the outbound hooks see it.
struct OutboundPacket {
  /// The first contiguous part of the packet, starting at the IPv4 header, writable. It
  /// always holds the whole IPv4 header (IHL * 4 bytes) and, unless the packet is a later
  /// fragment (fragment offset not 0), the fixed transport header behind it: 20 bytes of
  /// TCP, 8 of UDP or ICMP (ports or identifier, and the checksum), or as much of it as the
  /// packet has. It may hold more. When lwIP's own pbuf does not (lwIP's IP fragmentation
  /// puts the transport header of a first fragment in a second pbuf), the Stack gathers the
  /// packet into one buffer first, so the guarantee costs nothing in the usual case.
  ///
  /// These bytes are lwIP's: a TCP segment's header is the copy lwIP keeps for a
  /// retransmission, which rewrites sequence, acknowledgment, window and checksum but not
  /// the ports, so a rewrite of the TCP ports is still there when the segment is sent
  /// again — a hook that rewrites must map what it wrote to itself. The IPv4 header is
  /// rebuilt by lwIP on every send.
  absl::Span<uint8_t> head;
  /// Bytes of the whole IPv4 packet (`head` and what follows it in `parts`).
  size_t total_length = 0;
  /// The whole packet as gathered parts; parts[0] begins with `head`. Bytes after `head`
  /// are read-only: they may be an application's send buffer (a TCP segment lwIP did not
  /// copy) or another pbuf's.
  absl::Span<const iovec> parts;

  /// Copies the whole packet into `out` (resized to total_length): how a hook that takes a
  /// packet to forward it keeps it.
  void CopyTo(std::vector<uint8_t>& out) const;
};

/// Sees each IPv4 packet lwIP sends, just before the link write: TCP segments (SYN-ACKs,
/// RSTs and data alike), UDP datagrams, ICMP messages (echo replies, errors), fragments.
/// A packet written with Stack::SendPacket (a hook forwarding elsewhere) does not pass here.
class OutboundHook {
 public:
  virtual ~OutboundHook() = default;
  /// Rewrites `packet.head` in place (fixing the checksums it touches, RFC 1624), and
  /// passes, or takes the packet (then nothing is written to the link, and lwIP sees a
  /// successful send). Valid only during the call.
  virtual HookAction OnOutbound(const OutboundPacket& packet) = 0;
};

namespace internal {
// The part of a chain a handle removes from; the handle holds it weakly, so a handle may
// outlive its chain.
class HookRegistry {
 public:
  virtual ~HookRegistry() = default;
  virtual void Remove(uint64_t id) = 0;
};
}  // namespace internal

/// Keeps one hook in its chain; destroying or resetting it removes the hook (also from
/// inside a running chain: the hook is then not called again). Move-only. An empty handle
/// (default-constructed, moved from, reset) holds nothing.
class HookHandle {
 public:
  HookHandle() = default;
  HookHandle(std::weak_ptr<internal::HookRegistry> registry, uint64_t id) : registry_(std::move(registry)), id_(id) {}
  HookHandle(HookHandle&& other) noexcept : registry_(std::move(other.registry_)), id_(other.id_) { other.id_ = 0; }
  HookHandle& operator=(HookHandle&& other) noexcept {
    if (this != &other) {
      reset();
      registry_ = std::move(other.registry_);
      id_ = other.id_;
      other.id_ = 0;
    }
    return *this;
  }
  HookHandle(const HookHandle&) = delete;
  HookHandle& operator=(const HookHandle&) = delete;
  ~HookHandle() { reset(); }

  /// Removes the hook now.
  void reset();
  /// True while the handle holds a hook.
  explicit operator bool() const { return id_ != 0; }

 private:
  std::weak_ptr<internal::HookRegistry> registry_;
  uint64_t id_ = 0;
};

/// An ordered chain of hooks of one kind (InboundHook or OutboundHook).
template <typename Hook>
class HookChain {
 public:
  /// Adds `hook` (not owned; it must outlive the handle) at `order`. A hook added while the
  /// chain runs is called from the next packet on.
  HookHandle Add(int order, Hook* hook) { return HookHandle(core_, core_->Add(order, hook)); }

  bool empty() const { return core_->entries.empty(); }
  size_t size() const { return core_->live; }

  /// Calls `call(hook)` on each hook in order until one returns kTake; returns that, or
  /// kPass. A hook may add or remove hooks (itself too) while it runs.
  template <typename Call>
  HookAction Run(Call&& call) {
    Core& c = *core_;
    ++c.running;
    HookAction action = HookAction::kPass;
    for (size_t i = 0; i < c.entries.size(); ++i) {
      Hook* hook = c.entries[i].hook;
      if (hook != nullptr && call(*hook) == HookAction::kTake) {
        action = HookAction::kTake;
        break;
      }
    }
    if (--c.running == 0 && c.dirty) c.Settle();
    return action;
  }

 private:
  struct Entry {
    int order;
    uint64_t id;   // also the order of adding
    Hook* hook;    // nullptr: removed while the chain ran
  };
  struct Core : internal::HookRegistry {
    std::vector<Entry> entries;  // by (order, id)
    std::vector<Entry> added;    // added while running
    uint64_t next_id = 1;
    size_t live = 0;
    int running = 0;
    bool dirty = false;

    uint64_t Add(int order, Hook* hook) {
      const Entry e{order, next_id++, hook};
      ++live;
      if (running > 0) {
        added.push_back(e);
        dirty = true;
      } else {
        Insert(e);
      }
      return e.id;
    }
    void Remove(uint64_t id) override {
      auto same = [id](const Entry& e) { return e.id == id; };
      if (auto it = std::find_if(added.begin(), added.end(), same); it != added.end()) {
        added.erase(it);
        --live;
        return;
      }
      auto it = std::find_if(entries.begin(), entries.end(), same);
      if (it == entries.end() || it->hook == nullptr) return;
      --live;
      if (running > 0) {
        it->hook = nullptr;  // the running loop skips it; Settle erases it
        dirty = true;
      } else {
        entries.erase(it);
      }
    }
    void Insert(const Entry& e) {
      auto at = std::upper_bound(entries.begin(), entries.end(), e, [](const Entry& a, const Entry& b) {
        return a.order != b.order ? a.order < b.order : a.id < b.id;
      });
      entries.insert(at, e);
    }
    void Settle() {
      std::erase_if(entries, [](const Entry& e) { return e.hook == nullptr; });
      for (const Entry& e : added) Insert(e);
      added.clear();
      dirty = false;
    }
  };
  std::shared_ptr<Core> core_ = std::make_shared<Core>();
};

/// The fixed transport header bytes OutboundPacket::head guarantees behind the IPv4 header
/// at `ip` (at least 20 readable bytes): 20 for TCP, 8 for UDP and ICMP, 0 for other
/// protocols and later fragments. Returns the IPv4 header length (IHL * 4) plus that.
size_t OutboundHeadLength(const uint8_t* ip);

}  // namespace dpm::stack

#endif  // DPM_STACK_PACKET_HOOKS_H_
