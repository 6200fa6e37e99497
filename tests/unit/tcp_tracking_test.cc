// src/nat/tcp_tracking: the TCP state machine behind the NAT's session timers (RFC 6146
// §3.5.2 as RFC 7857 §2.1 adapts it to NAT44, RST per RFC 7857 §2.3, timers per RFC 5382
// REQ-5), table-driven over every state, a set of flag combinations and both directions.
#include "nat/tcp_tracking.h"

#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "wire/ipv4.h"

namespace dpm::nat {
namespace {

namespace tcp = wire::tcp;
using S = TcpState;

constexpr S kAllStates[] = {S::kClosed,       S::kInsideInit,    S::kOutsideInit, S::kEstablished,
                            S::kInsideFinRcv, S::kOutsideFinRcv, S::kBothFinRcv,  S::kTrans};
// The segments a connection sends: a bare ACK, SYN, SYN-ACK, FIN, RST, RST-ACK, no flag.
constexpr uint8_t kAllFlags[] = {tcp::kAck,           tcp::kSyn, tcp::kSyn | tcp::kAck, tcp::kFin | tcp::kAck,
                                 tcp::kRst,           tcp::kRst | tcp::kAck, 0};

constexpr bool kIn = true;
constexpr bool kOut = false;

// A transition the RFCs name; every (state, flags, direction) not listed keeps its state and
// refreshes the timer.
struct Row {
  S state;
  uint8_t flags;
  bool from_inside;
  S next;
  bool refresh;
};

std::vector<Row> Rows() {
  std::vector<Row> rows;
  auto both = [&](S state, uint8_t flags, S next, bool refresh) {
    rows.push_back({state, flags, kIn, next, refresh});
    rows.push_back({state, flags, kOut, next, refresh});
  };
  // RFC 7857 §2.3: a RST moves an established connection to TRANS (4 minutes, refreshed);
  // elsewhere it changes nothing and refreshes nothing.
  for (uint8_t rst : {tcp::kRst, static_cast<uint8_t>(tcp::kRst | tcp::kAck)}) {
    for (S s : {S::kEstablished, S::kInsideFinRcv, S::kOutsideFinRcv}) both(s, rst, S::kTrans, true);
    for (S s : {S::kClosed, S::kInsideInit, S::kOutsideInit, S::kBothFinRcv, S::kTrans}) both(s, rst, s, false);
  }
  // CLOSED: a SYN opens on its side; anything else is picked up as established.
  for (uint8_t syn : {tcp::kSyn, static_cast<uint8_t>(tcp::kSyn | tcp::kAck)}) {
    rows.push_back({S::kClosed, syn, kIn, S::kInsideInit, true});
    rows.push_back({S::kClosed, syn, kOut, S::kOutsideInit, true});
  }
  for (uint8_t f : {tcp::kAck, static_cast<uint8_t>(tcp::kFin | tcp::kAck), uint8_t{0}}) {
    both(S::kClosed, f, S::kEstablished, true);
  }
  // INIT: the other side's SYN (SYN-ACK or simultaneous open) establishes; only SYNs refresh.
  for (uint8_t syn : {tcp::kSyn, static_cast<uint8_t>(tcp::kSyn | tcp::kAck)}) {
    rows.push_back({S::kInsideInit, syn, kOut, S::kEstablished, true});
    rows.push_back({S::kOutsideInit, syn, kIn, S::kEstablished, true});
  }
  for (uint8_t f : {tcp::kAck, static_cast<uint8_t>(tcp::kFin | tcp::kAck), uint8_t{0}}) {
    both(S::kInsideInit, f, S::kInsideInit, false);
    both(S::kOutsideInit, f, S::kOutsideInit, false);
  }
  // FIN one way, then the other.
  rows.push_back({S::kEstablished, tcp::kFin | tcp::kAck, kIn, S::kInsideFinRcv, true});
  rows.push_back({S::kEstablished, tcp::kFin | tcp::kAck, kOut, S::kOutsideFinRcv, true});
  rows.push_back({S::kInsideFinRcv, tcp::kFin | tcp::kAck, kOut, S::kBothFinRcv, true});
  rows.push_back({S::kOutsideFinRcv, tcp::kFin | tcp::kAck, kIn, S::kBothFinRcv, true});
  // BOTH_FIN: never refreshed, but a new SYN (no ACK) reuses the 4-tuple after TIME-WAIT.
  rows.push_back({S::kBothFinRcv, tcp::kSyn, kIn, S::kInsideInit, true});
  rows.push_back({S::kBothFinRcv, tcp::kSyn, kOut, S::kOutsideInit, true});
  for (uint8_t f : {tcp::kAck, static_cast<uint8_t>(tcp::kSyn | tcp::kAck), static_cast<uint8_t>(tcp::kFin | tcp::kAck),
                    uint8_t{0}}) {
    both(S::kBothFinRcv, f, S::kBothFinRcv, false);
  }
  // TRANS: any segment but a RST (a SYN too) establishes again.
  for (uint8_t f : {tcp::kAck, tcp::kSyn, static_cast<uint8_t>(tcp::kSyn | tcp::kAck),
                    static_cast<uint8_t>(tcp::kFin | tcp::kAck), uint8_t{0}}) {
    both(S::kTrans, f, S::kEstablished, true);
  }
  return rows;
}

std::optional<Row> Find(const std::vector<Row>& rows, S state, uint8_t flags, bool from_inside) {
  for (const Row& r : rows) {
    if (r.state == state && r.flags == flags && r.from_inside == from_inside) return r;
  }
  return std::nullopt;
}

TEST(NatTcpTracking, EveryStateFlagsAndDirectionAsTheTableSays) {
  const std::vector<Row> rows = Rows();
  size_t named = 0;
  for (S state : kAllStates) {
    for (uint8_t flags : kAllFlags) {
      for (bool from_inside : {kIn, kOut}) {
        const std::optional<Row> row = Find(rows, state, flags, from_inside);
        const TcpTransition want = row ? TcpTransition{row->next, row->refresh} : TcpTransition{state, true};
        const TcpTransition got = TrackTcp(state, flags, from_inside);
        EXPECT_EQ(got, want) << TcpStateName(state) << " flags 0x" << std::hex << int{flags}
                             << (from_inside ? " from inside" : " from outside") << ": got "
                             << TcpStateName(got.next) << (got.refresh ? " refreshed" : " not refreshed");
        named += row.has_value();
      }
    }
  }
  EXPECT_GT(named, 80u) << "most cases are named rows, not the default";
}

TEST(NatTcpTracking, AConnectionFromOpenToClose) {
  // Inside opens, outside answers, inside closes first, outside closes, and a new SYN reuses
  // the 4-tuple.
  struct Step {
    uint8_t flags;
    bool from_inside;
    S want;
  };
  const Step steps[] = {
      {tcp::kSyn, kIn, S::kInsideInit},          {tcp::kSyn | tcp::kAck, kOut, S::kEstablished},
      {tcp::kAck, kIn, S::kEstablished},         {tcp::kFin | tcp::kAck, kIn, S::kInsideFinRcv},
      {tcp::kAck, kOut, S::kInsideFinRcv},       {tcp::kFin | tcp::kAck, kOut, S::kBothFinRcv},
      {tcp::kAck, kIn, S::kBothFinRcv},          {tcp::kSyn, kOut, S::kOutsideInit},
      {tcp::kSyn | tcp::kAck, kIn, S::kEstablished}, {tcp::kRst, kOut, S::kTrans},
      {tcp::kAck, kIn, S::kEstablished},
  };
  S state = S::kClosed;
  for (const Step& step : steps) {
    state = TrackTcp(state, step.flags, step.from_inside).next;
    EXPECT_EQ(state, step.want) << TcpStateName(state);
  }
}

TEST(NatTcpTracking, TimersAndTheStateASegmentOpens) {
  // RFC 5382 REQ-5: the established timer while the connection is up or half closed.
  for (S s : kAllStates) {
    const bool established = s == S::kEstablished || s == S::kInsideFinRcv || s == S::kOutsideFinRcv;
    EXPECT_EQ(UsesEstablishedTimer(s), established) << TcpStateName(s);
  }
  EXPECT_EQ(TcpStateOpenedFromInside(tcp::kSyn), S::kInsideInit);
  EXPECT_EQ(TcpStateOpenedFromInside(tcp::kSyn | tcp::kAck), S::kTrans) << "a SYN-ACK is mid-connection";
  EXPECT_EQ(TcpStateOpenedFromInside(tcp::kAck), S::kTrans);
  EXPECT_EQ(TcpStateOpenedFromInside(tcp::kFin | tcp::kAck), S::kTrans);
}

TEST(NatTcpTracking, StateNames) {
  const std::vector<std::string> want = {"CLOSED",     "INSIDE_INIT", "OUTSIDE_INIT", "ESTABLISHED",
                                         "INSIDE_FIN", "OUTSIDE_FIN", "BOTH_FIN",     "TRANS"};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(TcpStateName(kAllStates[i]), want[i]);
}

}  // namespace
}  // namespace dpm::nat
