#include "tun/pcap_link.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace dpm::tun {
namespace {

constexpr uint32_t kMagic = 0xa1b2c3d4;
constexpr uint32_t kLinkTypeRaw = 101;
constexpr uint32_t kLinkTypeEthernet = 1;

uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

absl::StatusOr<std::unique_ptr<PcapWriter>> PcapWriter::Open(const std::string& path, size_t snaplen, bool ethernet) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::InternalError(absl::StrCat("open pcap ", path, ": ", std::strerror(errno)));
  struct {
    uint32_t magic;
    uint16_t major, minor;
    int32_t thiszone;
    uint32_t sigfigs, snaplen, linktype;
  } header{kMagic, 2, 4, 0, 0, static_cast<uint32_t>(snaplen), ethernet ? kLinkTypeEthernet : kLinkTypeRaw};
  std::fwrite(&header, sizeof(header), 1, f);
  std::fflush(f);
  return std::unique_ptr<PcapWriter>(new PcapWriter(f, snaplen));
}

PcapWriter::~PcapWriter() { std::fclose(file_); }

void PcapWriter::Write(absl::Span<const iovec> parts, uint64_t unix_micros, size_t wire_length) {
  size_t total = TotalLength(parts);
  uint32_t record[4] = {static_cast<uint32_t>(unix_micros / 1000000), static_cast<uint32_t>(unix_micros % 1000000),
                        static_cast<uint32_t>(std::min(total, snaplen_)),
                        static_cast<uint32_t>(std::max(total, wire_length))};
  std::fwrite(record, sizeof(record), 1, file_);
  size_t left = std::min(total, snaplen_);
  for (const iovec& v : parts) {
    size_t n = std::min(left, v.iov_len);
    std::fwrite(v.iov_base, 1, n, file_);
    left -= n;
  }
  // Flushed per packet so a capture is readable while dpmd runs and after it is killed.
  std::fflush(file_);
}

void PcapWriter::Flush() { std::fflush(file_); }

absl::StatusOr<size_t> PcapLink::Recorded(absl::Span<uint8_t> packet, absl::StatusOr<size_t> n) {
  if (n.ok()) {
    iovec v{packet.data(), std::min(*n, packet.size())};
    writer_->Write(absl::MakeConstSpan(&v, 1), NowMicros(), *n);
    counters_ = inner_->counters();
  }
  return n;
}

absl::Status PcapLink::Recorded(absl::Span<const iovec> parts, absl::Status s) {
  if (s.ok()) writer_->Write(parts, NowMicros());  // only what really went out
  counters_ = inner_->counters();
  return s;
}

absl::StatusOr<size_t> PcapLink::Read(absl::Span<uint8_t> packet) { return Recorded(packet, inner_->Read(packet)); }

absl::Status PcapLink::Write(absl::Span<const iovec> parts) { return Recorded(parts, inner_->Write(parts)); }

absl::StatusOr<size_t> PcapLink::ReadOffloaded(absl::Span<uint8_t> packet, wire::Offload* offload) {
  return Recorded(packet, inner_->ReadOffloaded(packet, offload));
}

absl::Status PcapLink::WriteOffloaded(absl::Span<const iovec> parts, const wire::Offload& offload) {
  return Recorded(parts, inner_->WriteOffloaded(parts, offload));
}

}  // namespace dpm::tun
