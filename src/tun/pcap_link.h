// Records every packet a link reads or writes to a pcap file (LINKTYPE_RAW: IPv4/IPv6
// packets without a link header; LINKTYPE_ETHERNET for an Ethernet link's frames), which
// tshark and tcpdump read. Wraps any other Link.
#ifndef DPM_TUN_PCAP_LINK_H_
#define DPM_TUN_PCAP_LINK_H_

#include <cstdio>
#include <memory>
#include <string>

#include "tun/link.h"

namespace dpm::tun {

/// Writes the classic pcap format (magic 0xa1b2c3d4, microsecond timestamps, version 2.4).
class PcapWriter {
 public:
  /// Creates or truncates `path`; `ethernet`: the records are Ethernet frames (LINKTYPE_ETHERNET),
  /// else IP packets (LINKTYPE_RAW). Errors: Internal (cannot open).
  static absl::StatusOr<std::unique_ptr<PcapWriter>> Open(const std::string& path, size_t snaplen,
                                                          bool ethernet = false);
  ~PcapWriter();
  /// Appends one packet, with the time in microseconds since the Unix epoch. `wire_length`
  /// is the packet's length on the link when `parts` hold only its first bytes (0: the same).
  void Write(absl::Span<const iovec> parts, uint64_t unix_micros, size_t wire_length = 0);
  void Flush();

 private:
  PcapWriter(std::FILE* f, size_t snaplen) : file_(f), snaplen_(snaplen) {}
  std::FILE* file_;
  size_t snaplen_;
};

class PcapLink : public Link {
 public:
  PcapLink(std::unique_ptr<Link> inner, std::unique_ptr<PcapWriter> writer)
      : inner_(std::move(inner)), writer_(std::move(writer)) {}
  int fd() const override { return inner_->fd(); }
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> packet) override;
  absl::Status Write(absl::Span<const iovec> parts) override;
  size_t mtu() const override { return inner_->mtu(); }
  std::string name() const override { return inner_->name(); }
  bool ethernet() const override { return inner_->ethernet(); }
  /// Offload passes through: the capture holds packets as the device exchanged them —
  /// super-packets whole, partial checksums unfinished (as tcpdump shows them on a host
  /// with offload).
  bool offload() const override { return inner_->offload(); }
  absl::StatusOr<size_t> ReadOffloaded(absl::Span<uint8_t> packet, wire::Offload* offload) override;
  absl::Status WriteOffloaded(absl::Span<const iovec> parts, const wire::Offload& offload) override;
  const Link& inner() const { return *inner_; }

 private:
  absl::StatusOr<size_t> Recorded(absl::Span<uint8_t> packet, absl::StatusOr<size_t> n);
  absl::Status Recorded(absl::Span<const iovec> parts, absl::Status s);
  std::unique_ptr<Link> inner_;
  std::unique_ptr<PcapWriter> writer_;
};

}  // namespace dpm::tun

#endif  // DPM_TUN_PCAP_LINK_H_
