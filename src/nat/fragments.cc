#include "nat/fragments.h"

#include <algorithm>

namespace dpm::nat {

void FragmentTracker::Append(uint32_t i) {
  Train& t = slots_[i];
  List& l = ListOf(t);
  t.prev = l.tail;
  t.next = kNoIndex;
  (l.tail == kNoIndex ? l.head : slots_[l.tail].next) = i;
  l.tail = i;
  ++l.size;
}

void FragmentTracker::Unlink(uint32_t i) {
  Train& t = slots_[i];
  List& l = ListOf(t);
  (t.prev == kNoIndex ? l.head : slots_[t.prev].next) = t.next;
  (t.next == kNoIndex ? l.tail : slots_[t.next].prev) = t.prev;
  --l.size;
}

uint32_t FragmentTracker::Add(const FragmentKey& key, bool recorded, uint64_t deadline_ms) {
  uint32_t i;
  if (!free_slots_.empty()) {
    i = free_slots_.back();
    free_slots_.pop_back();
  } else {
    i = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  Train& t = slots_[i];
  t = Train{};
  t.key = key;
  t.recorded = recorded;
  t.deadline_ms = deadline_ms;
  Append(i);
  index_[key] = i;
  return i;
}

void FragmentTracker::Remove(uint32_t i) {
  Unlink(i);
  Train& t = slots_[i];
  index_.erase(t.key);
  if (!t.recorded) held_packets_ -= t.packets.size();
  t.packets = {};  // frees the held packets' memory now
  free_slots_.push_back(i);
}

size_t FragmentTracker::Drop(uint32_t i) {
  const size_t count = slots_[i].packets.size();
  for (const std::vector<uint8_t>& packet : slots_[i].packets) bytes_ -= packet.size();
  Remove(i);
  return count;
}

uint32_t FragmentTracker::Find(const FragmentKey& key, uint64_t now_ms, size_t* timed_out) {
  auto it = index_.find(key);
  if (it == index_.end()) return kNoIndex;
  const uint32_t train = it->second;
  if (slots_[train].deadline_ms > now_ms) return train;
  *timed_out += Drop(train);
  return kNoIndex;
}

bool FragmentTracker::NoteBytes(uint32_t record, const wire::Ipv4View& fragment) {
  Train& t = slots_[record];
  const uint32_t payload = static_cast<uint32_t>(fragment.payload().size());
  t.seen += payload;
  if (!fragment.more_fragments()) t.end = uint32_t{fragment.fragment_offset()} * 8 + payload;
  if (t.end == 0 || t.seen < t.end) return false;
  Remove(record);
  return true;
}

bool FragmentTracker::Hold(uint64_t now_ms, const wire::Ipv4View& fragment, const FragmentKey& key, uint32_t train) {
  const absl::Span<uint8_t> bytes = fragment.bytes();  // to the total length: no link padding
  const size_t count = train == kNoIndex ? 0 : slots_[train].packets.size();
  if (count >= limits_.max_held_per_datagram || bytes_ + bytes.size() > limits_.max_held_bytes ||
      (train == kNoIndex && held_.size >= limits_.max_held_datagrams)) {
    return false;
  }
  if (train == kNoIndex) train = Add(key, /*recorded=*/false, now_ms + limits_.timeout_ms);
  slots_[train].packets.emplace_back(bytes.begin(), bytes.end());
  bytes_ += bytes.size();
  ++held_packets_;
  return true;
}

uint32_t FragmentTracker::Record(uint64_t now_ms, const FragmentKey& key, uint32_t train,
                                 const FragmentTranslation& translation, std::vector<std::vector<uint8_t>>* held,
                                 size_t* evicted) {
  if (train != kNoIndex) {
    if (!slots_[train].recorded) {
      held->swap(slots_[train].packets);
      held_packets_ -= held->size();
      for (const std::vector<uint8_t>& packet : *held) bytes_ -= packet.size();
    }
    Remove(train);
  }
  if (limits_.max_records == 0) return kNoIndex;
  while (records_.size >= limits_.max_records) {
    Remove(records_.head);
    ++*evicted;
  }
  const uint32_t record = Add(key, /*recorded=*/true, now_ms + limits_.timeout_ms);
  slots_[record].translation = translation;
  return record;
}

void FragmentTracker::Release(Verdict verdict, std::vector<uint8_t> packet) {
  bytes_ += packet.size();
  released_.push_back(Released{verdict, std::move(packet)});
}

size_t FragmentTracker::TakeReleased(absl::FunctionRef<void(Verdict, absl::Span<uint8_t>)> fn) {
  if (released_.empty()) return 0;
  std::vector<Released> batch;
  batch.swap(released_);  // `fn` may call in and release more
  for (Released& r : batch) {
    bytes_ -= r.packet.size();
    fn(r.verdict, absl::MakeSpan(r.packet));
  }
  return batch.size();
}

size_t FragmentTracker::Expire(uint64_t now_ms, size_t budget) {
  size_t removed = 0;
  size_t timed_out = 0;
  for (List* list : {&held_, &records_}) {
    while (removed < budget && list->head != kNoIndex && slots_[list->head].deadline_ms <= now_ms) {
      timed_out += Drop(list->head);
      ++removed;
    }
  }
  return timed_out;
}

std::optional<uint64_t> FragmentTracker::NextDeadline() const {
  std::optional<uint64_t> next;
  for (const List* list : {&held_, &records_}) {
    if (list->head != kNoIndex) next = std::min(next.value_or(UINT64_MAX), slots_[list->head].deadline_ms);
  }
  return next;
}

}  // namespace dpm::nat
