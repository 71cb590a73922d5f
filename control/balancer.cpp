// SPDX-License-Identifier: BSD-2-Clause
// Balancer: the model, id allocation and recovery, effective weights and
// panic mode, table builds and the all-or-nothing publication.
#include "control/balancer.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>

#include "dataplane/abi/consts.h"

namespace sluice::control {
namespace {

constexpr uint32_t kSlots = SLUICE_MAX_BACKENDS;
constexpr uint32_t kSlotMask = kSlots - 1;
constexpr uint32_t kMaxWeight = 65535;

struct Backend {
  BackendConfig cfg;
  uint32_t id = 0;
  Health health = Health::kUnchecked;
  std::optional<double> rtt_us;
  std::string last_check;
  std::optional<ProbeCounters> probes;
  std::optional<uint32_t> policy_weight;  // nullopt: the configured weight

  [[nodiscard]] uint32_t policy() const { return policy_weight.value_or(cfg.weight); }
};

// What a VIP's table was built from, and the table.
struct Built {
  uint32_t table_size = 0;
  bool panic = false;
  std::vector<std::pair<uint32_t, uint32_t>> inputs;  // (backend id, weight > 0), by id
  std::shared_ptr<const std::vector<uint32_t>> table;
};

struct Vip {
  VipConfig cfg;  // cfg.backends is unused: `backends` holds them
  uint32_t vip_id = 0;
  std::vector<Backend> backends;
  Built built;  // in the committed model: what the fast paths hold
};

struct Model {
  std::vector<Vip> vips;
};

bool same_key(const VipConfig& a, const VipConfig& b) {
  return a.addr == b.addr && a.port == b.port && a.protocol == b.protocol;
}

sluice_vip_key vip_key(const VipConfig& v) {
  sluice_vip_key k{};
  std::memcpy(k.addr.bytes, v.addr.ip.bytes, v.addr.size());
  k.port = sl_htons(v.port);
  k.proto = v.protocol == Protocol::kTcp ? SLUICE_IPPROTO_TCP : SLUICE_IPPROTO_UDP;
  k.family = v.addr.family;
  return k;
}

bool key_matches(const sluice_vip_key& k, const VipConfig& v) {
  const sluice_vip_key want = vip_key(v);
  return k.family == want.family && k.port == want.port && k.proto == want.proto &&
         std::memcmp(k.addr.bytes, want.addr.bytes, v.addr.size()) == 0;
}

IpAddress slot_address(const sluice_backend& b) {
  IpAddress a;
  a.family = b.family;
  std::memcpy(a.ip.bytes, b.addr.bytes, b.family == SLUICE_FAMILY_IPV6 ? 16 : 4);
  return a;
}

uint32_t table_size_of(const Vip& v) {
  return v.cfg.table_size_auto ? maglev_auto_table_size(v.backends.size()) : v.cfg.table_size;
}

// Effective weights (DESIGN.md "Weights from health"): see Balancer's
// class comment.
Built inputs_of(const Vip& v) {
  Built b;
  b.table_size = table_size_of(v);
  bool any_alive = false;
  bool any_serving = false;
  uint64_t alive_sum = 0;
  for (const Backend& be : v.backends) {
    if (be.cfg.weight == 0) continue;
    any_serving = true;
    if (be.health != Health::kDown) {
      any_alive = true;
      alive_sum += be.policy();
    }
  }
  for (const Backend& be : v.backends) {
    if (be.cfg.weight == 0) continue;
    uint32_t w = 0;
    if (any_alive) {
      // A policy that gives every live backend 0 must not empty the table.
      if (be.health != Health::kDown) w = alive_sum == 0 ? 1 : be.policy();
    } else if (any_serving) {
      w = be.cfg.weight;
    }
    if (w > 0) b.inputs.emplace_back(be.id, w);
  }
  b.panic = !any_alive && any_serving;
  std::sort(b.inputs.begin(), b.inputs.end());
  return b;
}

// Whether a backend is in the snapshot: a down one is not (its flows
// move), unless the VIP is in panic and it serves.
bool in_snapshot(const Backend& be, bool panic) {
  return be.health != Health::kDown || (panic && be.cfg.weight > 0);
}

Error not_found_vip(std::string_view vip) {
  return Error{-ENOENT, "no VIP \"" + std::string(vip) + "\""};
}

Error invalid(std::string msg) { return Error{-EINVAL, std::move(msg)}; }

// The checks config.cpp makes on one backend, for runtime additions.
Status check_backend(const BackendConfig& b, const VipConfig& vip, const Config& config) {
  const std::string who = "backend " + b.addr.to_string();
  if (const char* why = unusable_as_backend(b.addr))
    return invalid(who + ": expected a unicast address of another host, got " + why);
  if (b.addr == vip.addr) return invalid(who + ": is the VIP's own address");
  if (b.weight > kMaxWeight) return invalid(who + ": weight must be 0..65535");
  if (vip.addr.is_v6() && !b.addr.is_v6())
    return invalid(who + ": an IPv6 VIP needs IPv6 backends");
  if (b.capacity && (*b.capacity < 1 || *b.capacity > 100000000))
    return invalid(who + ": capacity must be 1..100000000");
  if (vip.policy == Policy::kLeastConn && !b.capacity)
    return invalid(who + ": policy \"least-conn\" needs each backend's capacity");
  if (!b.health_check.empty()) {
    const HealthCheck* hc = config.find_health_check(b.health_check);
    if (hc == nullptr) return invalid(who + ": no [health_checks." + b.health_check + "]");
    if (hc->port == 0 && vip.port == 0)
      return invalid(who + ": the VIP has port 0, so health_checks." + b.health_check +
                     " needs a port");
  } else if (vip.policy == Policy::kFastest) {
    return invalid(who + ": policy \"fastest\" needs a health_check");
  }
  if (const auto e = config.encap()) {
    if (b.addr.is_v6() && !e->source_v6)
      return invalid(who + ": IPv6 backends need " + e->section + ".encap_source_v6 in the config");
    if (!b.addr.is_v6() && !e->source_v4)
      return invalid(who + ": IPv4 backends need " + e->section + ".encap_source_v4 in the config");
  }
  return Ok{};
}

}  // namespace

const char* to_string(Health h) {
  switch (h) {
    case Health::kUp:
      return "up";
    case Health::kDown:
      return "down";
    case Health::kUnchecked:
      break;
  }
  return "unchecked";
}

std::string default_vip_name(const VipConfig& v) {
  return (v.addr.is_v6() ? '[' + v.addr.to_string() + ']' : v.addr.to_string()) + ':' +
         std::to_string(v.port) + '/' + sluice::to_string(v.protocol);
}

uint32_t PublishReport::moved(std::string_view vip) const {
  for (const Vip& v : vips)
    if (v.name == vip) return v.entries_moved;
  return 0;
}

struct Balancer::State {
  Config config;
  std::vector<std::unique_ptr<Fastpath>> fastpaths;
  Model committed;  // what the fast paths hold (once published)
  Model pending;    // committed + unpublished changes
  bool published = false;
  bool dirty = true;
  uint64_t generation = 1;
  // Per slot: the highest id it has held (recovered or given out); a new
  // id for the slot is above it.
  std::vector<uint32_t> slot_last_id = std::vector<uint32_t>(kSlots, 0);
  // Slots and VIP ids a fast path may hold beyond the committed model (at
  // start, or after a failed publish): not given out until a publish
  // succeeds.
  std::vector<bool> slot_held = std::vector<bool>(kSlots, false);
  std::vector<bool> vip_held = std::vector<bool>(SLUICE_MAX_VIPS, false);
  uint32_t slot_cursor = 0;
  MaglevBuilder builder;
  // By backend id (ids are never reused), summed over the fast paths, as
  // of the last refresh_active_flows(); nullopt: unknown.
  std::optional<ActiveFlowCounts> active_flows;

  Vip* find_vip(std::string_view name) {
    for (Vip& v : pending.vips)
      if (v.cfg.name == name) return &v;
    return nullptr;
  }
  const Vip* find_vip(std::string_view name) const {
    for (const Vip& v : pending.vips)
      if (v.cfg.name == name) return &v;
    return nullptr;
  }
  static Backend* find_backend(Vip& v, const IpAddress& addr) {
    for (Backend& b : v.backends)
      if (b.cfg.addr == addr) return &b;
    return nullptr;
  }

  std::vector<bool> occupied_slots() const {
    std::vector<bool> used = slot_held;
    for (const Model* m : {&committed, &pending})
      for (const Vip& v : m->vips)
        for (const Backend& b : v.backends) used[b.id & kSlotMask] = true;
    return used;
  }

  // A fresh id in a free slot, above every id that slot held.
  Result<uint32_t> alloc_backend_id(std::vector<bool>& used) {
    for (uint32_t n = 0; n < kSlots; ++n) {
      const uint32_t slot = (slot_cursor + n) & kSlotMask;
      if (used[slot]) continue;
      const uint32_t last = slot_last_id[slot];
      // Ids below kSlots are never given, so a never-used slot (id 0) and
      // one that held id `slot` both move on.
      const uint64_t id = last < kSlots ? uint64_t{slot} + kSlots : uint64_t{last} + kSlots;
      if (id >= SLUICE_BACKEND_NONE) continue;  // this slot's ids are used up
      used[slot] = true;
      slot_last_id[slot] = static_cast<uint32_t>(id);
      slot_cursor = (slot + 1) & kSlotMask;
      return static_cast<uint32_t>(id);
    }
    return invalid("no free backend slot: at most " + std::to_string(kSlots) +
                   " backends over all VIPs");
  }

  std::vector<bool> occupied_vip_ids() const {
    std::vector<bool> used = vip_held;
    for (const Model* m : {&committed, &pending})
      for (const Vip& v : m->vips) used[v.vip_id] = true;
    return used;
  }

  static Result<uint32_t> alloc_vip_id(std::vector<bool>& used) {
    for (uint32_t i = 0; i < SLUICE_MAX_VIPS; ++i) {
      if (used[i]) continue;
      used[i] = true;
      return i;
    }
    return invalid("at most " + std::to_string(SLUICE_MAX_VIPS) + " VIPs");
  }

  Status check_vip(const VipConfig& v, const Vip* except) const {
    if (v.name.empty()) return invalid("a VIP needs a name");
    if (const char* why = unusable_as_vip(v.addr))
      return invalid("VIP " + v.addr.to_string() + ": expected a unicast address, got " + why);
    for (const Vip& o : pending.vips) {
      if (&o == except) continue;
      if (o.cfg.name == v.name) return Error{-EEXIST, "VIP \"" + v.name + "\" exists"};
      if (same_key(o.cfg, v))
        return Error{-EEXIST, "VIP " + default_vip_name(v) + " exists (as \"" + o.cfg.name + "\")"};
    }
    if (v.cache && v.protocol != Protocol::kUdp)
      return invalid("the hot-object cache needs protocol \"udp\"");
    if (std::string why = key_hash_refusal(v); !why.empty()) return invalid(std::move(why));
    if (!v.table_size_auto &&
        (v.table_size < kMaglevMinSize || v.table_size > kMaglevMaxSize || !is_prime(v.table_size)))
      return invalid("table_size must be a prime " + std::to_string(kMaglevMinSize) + ".." +
                     std::to_string(kMaglevMaxSize) + " or auto");
    for (size_t i = 0; i < v.backends.size(); ++i) {
      if (auto s = check_backend(v.backends[i], v, config); !s.ok()) return s;
      for (size_t j = 0; j < i; ++j)
        if (v.backends[j].addr == v.backends[i].addr)
          return invalid("duplicate backend " + v.backends[i].addr.to_string());
    }
    const uint32_t m = v.table_size_auto ? maglev_auto_table_size(v.backends.size()) : v.table_size;
    if (v.backends.size() > m)
      return invalid("more backends than table entries (" + std::to_string(m) + ")");
    for (const Vip& o : pending.vips) {
      if (&o == except) continue;
      for (const BackendConfig& b : v.backends)
        if (b.addr == o.cfg.addr) return backend_at_vip(b.addr, o.cfg.name);
      for (const Backend& ob : o.backends)
        if (ob.cfg.addr == v.addr)
          return invalid("VIP " + v.addr.to_string() + " is a backend of VIP \"" + o.cfg.name +
                         "\"; expected an address no backend has");
    }
    return Ok{};
  }

  // A packet encapsulated toward a VIP's address comes back to the
  // balancers that announce it, never to a backend (the config's rule).
  static Status backend_at_vip(const IpAddress& addr, const std::string& vip) {
    return invalid("backend " + addr.to_string() + " is the address of VIP \"" + vip +
                   "\"; expected a backend's own address");
  }

  // Builds the tables of `model` whose inputs changed since they were
  // last built.
  Status build(Model& model) {
    for (Vip& v : model.vips) {
      Built want = inputs_of(v);
      if (v.built.table && v.built.table_size == want.table_size && v.built.panic == want.panic &&
          v.built.inputs == want.inputs)
        continue;
      if (want.inputs.empty()) {
        want.table =
            std::make_shared<const std::vector<uint32_t>>(want.table_size, SLUICE_BACKEND_NONE);
      } else {
        std::vector<MaglevBackend> in;
        in.reserve(want.inputs.size());
        for (const auto& [id, w] : want.inputs) {
          for (const Backend& b : v.backends)
            if (b.id == id) in.push_back(MaglevBackend{b.cfg.addr, w});
        }
        auto t = builder.build(in, want.table_size);
        if (!t.ok())
          return Error{t.error().code, "VIP \"" + v.cfg.name + "\": " + t.error().message};
        std::vector<uint32_t> ids(t.value().size());
        for (size_t i = 0; i < ids.size(); ++i) ids[i] = want.inputs[t.value()[i]].first;
        want.table = std::make_shared<const std::vector<uint32_t>>(std::move(ids));
      }
      v.built = std::move(want);
    }
    return Ok{};
  }

  // A TCP VIP on the address and port of a cached UDP VIP: the fast path
  // must see its memcached writes to invalidate the UDP VIP's keys.
  static bool caches_twin(const Model& model, const VipConfig& tcp) {
    if (tcp.protocol != Protocol::kTcp) return false;
    for (const Vip& u : model.vips)
      if (u.cfg.cache && u.cfg.protocol == Protocol::kUdp && u.cfg.port == tcp.port &&
          u.cfg.addr == tcp.addr)
        return true;
    return false;
  }

  FastpathSnapshot snapshot_of(const Model& model) const {
    FastpathSnapshot snap;
    for (const Vip& v : model.vips) {
      FastpathVip fv;
      fv.key = vip_key(v.cfg);
      fv.meta.vip_id = v.vip_id;
      if (v.cfg.hash == HashFields::kSource) fv.meta.flags |= SLUICE_VIP_HASH_SRC_ONLY;
      if (v.cfg.hash == HashFields::kKey) fv.meta.flags |= SLUICE_VIP_KEY_HASH;
      if (v.cfg.cache || caches_twin(model, v.cfg)) fv.meta.flags |= SLUICE_VIP_CACHE;
      if (v.built.panic) fv.meta.flags |= SLUICE_VIP_PANIC;
      fv.meta.table_size = v.built.table_size;
      fv.table = *v.built.table;
      snap.vips.push_back(fv);
      for (const Backend& b : v.backends) {
        if (!in_snapshot(b, v.built.panic)) continue;
        sluice_backend sb{};
        sb.addr = b.cfg.addr.ip;
        sb.id = b.id;
        sb.family = b.cfg.addr.family;
        sb.flags = b.cfg.weight == 0 ? SLUICE_BACKEND_DRAINING : 0;
        snap.backends.push_back(sb);
      }
    }
    std::sort(snap.backends.begin(), snap.backends.end(),
              [](const sluice_backend& a, const sluice_backend& b) { return a.id < b.id; });
    if (const auto e = config.encap()) {
      if (e->source_v4) snap.encap.src_v4 = e->source_v4->ip;
      if (e->source_v6) snap.encap.src_v6 = e->source_v6->ip;
      snap.encap.mtu = static_cast<uint16_t>(e->mtu);
      snap.gateway_mac = e->gateway_mac;
    }
    return snap;
  }

  static bool same_snapshot(const FastpathSnapshot& a, const FastpathSnapshot& b) {
    if (a.vips.size() != b.vips.size() || a.backends.size() != b.backends.size()) return false;
    if (std::memcmp(&a.encap, &b.encap, sizeof a.encap) != 0 || a.gateway_mac != b.gateway_mac)
      return false;
    for (size_t i = 0; i < a.vips.size(); ++i) {
      const FastpathVip& x = a.vips[i];
      const FastpathVip& y = b.vips[i];
      if (std::memcmp(&x.key, &y.key, sizeof x.key) != 0 ||
          std::memcmp(&x.meta, &y.meta, sizeof x.meta) != 0 ||
          !std::equal(x.table.begin(), x.table.end(), y.table.begin(), y.table.end()))
        return false;
    }
    return std::memcmp(a.backends.data(), b.backends.data(),
                       a.backends.size() * sizeof(sluice_backend)) == 0;
  }

  // Publishes `pending` (built) or restores `committed`; see publish().
  Result<PublishReport> commit() {
    if (auto s = build(pending); !s.ok()) {
      pending = committed;
      dirty = false;
      return s.error();
    }
    const FastpathSnapshot snap = snapshot_of(pending);
    PublishReport report;
    report.changed = !published || !same_snapshot(snap, snapshot_of(committed));
    if (report.changed) {
      for (size_t i = 0; i < fastpaths.size(); ++i) {
        Status st = fastpaths[i]->publish(snap);
        if (st.ok()) continue;
        // Whatever the failed publication wrote may still be in the maps.
        for (const sluice_backend& b : snap.backends) slot_held[b.id & kSlotMask] = true;
        for (const FastpathVip& v : snap.vips) vip_held[v.meta.vip_id] = true;
        std::string msg = fastpaths[i]->info().kind + " " + fastpaths[i]->info().interface + ": " +
                          st.error().message;
        if (published) {
          const FastpathSnapshot old = snapshot_of(committed);
          for (size_t j = 0; j <= i; ++j) {
            if (Status r = fastpaths[j]->publish(old); !r.ok())
              msg += "; restoring the previous state on " + fastpaths[j]->info().interface +
                     " failed too: " + r.error().message;
          }
        }
        pending = committed;
        dirty = false;
        return Error{st.error().code, std::move(msg)};
      }
    }
    for (const Vip& v : pending.vips) {
      const Vip* old = nullptr;
      for (const Vip& o : committed.vips)
        if (same_key(o.cfg, v.cfg)) old = &o;
      if (old != nullptr && old->built.table == v.built.table) continue;
      PublishReport::Vip r{v.cfg.name, 0};
      if (old != nullptr && published) {
        const auto& a = *old->built.table;
        const auto& b = *v.built.table;
        if (a.size() != b.size()) {
          r.entries_moved = static_cast<uint32_t>(b.size());
        } else {
          for (size_t i = 0; i < a.size(); ++i) r.entries_moved += a[i] != b[i] ? 1u : 0u;
        }
      }
      report.vips.push_back(std::move(r));
    }
    committed = pending;
    published = true;
    dirty = false;
    std::fill(slot_held.begin(), slot_held.end(), false);
    std::fill(vip_held.begin(), vip_held.end(), false);
    if (report.changed) ++generation;
    return report;
  }

  // A backend from its config, taking over `old`'s id and state when given.
  static Backend make_backend(const BackendConfig& cfg, const Backend* old, Policy policy) {
    Backend b;
    b.cfg = cfg;
    b.health = cfg.health_check.empty() ? Health::kUnchecked : Health::kUp;
    if (old != nullptr) {
      b.id = old->id;
      if (old->cfg.health_check == cfg.health_check) {
        b.health = old->health;
        b.rtt_us = old->rtt_us;
        b.last_check = old->last_check;
        b.probes = old->probes;
      }
      if (policy != Policy::kStatic) b.policy_weight = old->policy_weight;
    }
    return b;
  }

  // The model of `cfg`, with ids and state carried over from `prev` (by
  // VIP key and backend address) or, failing that, from what the first
  // fast path held at start (`recovered`).
  Result<Model> model_of(const Config& cfg, const Model& prev, const FastpathState* recovered) {
    Model m;
    std::vector<bool> vip_used = vip_held;
    for (const Vip& v : committed.vips) vip_used[v.vip_id] = true;
    std::vector<bool> slot_used = slot_held;
    for (const Vip& v : committed.vips)
      for (const Backend& b : v.backends) slot_used[b.id & kSlotMask] = true;
    // Recovered ids a VIP's table names, and those no table names (drained).
    std::vector<bool> claimed(kSlots, false);
    std::vector<bool> in_table(kSlots, false);
    if (recovered != nullptr)
      for (const auto& rv : recovered->vips)
        for (uint32_t id : rv.backend_ids) in_table[id & kSlotMask] = true;
    auto recovered_id = [&](const IpAddress& addr, const std::vector<uint32_t>* ids) {
      if (recovered == nullptr || recovered->slots.size() != kSlots) return SLUICE_BACKEND_NONE;
      auto fits = [&](uint32_t id) {
        const sluice_backend& s = recovered->slots[id & kSlotMask];
        return s.id == id && (s.flags & SLUICE_BACKEND_VALID) != 0 && !claimed[id & kSlotMask] &&
               slot_address(s) == addr;
      };
      if (ids != nullptr) {
        for (uint32_t id : *ids)
          if (fits(id)) return id;
      } else {
        for (uint32_t s = 0; s < kSlots; ++s)
          if (!in_table[s] && fits(recovered->slots[s].id)) return recovered->slots[s].id;
      }
      return SLUICE_BACKEND_NONE;
    };

    for (const VipConfig& vc : cfg.vips) {
      Vip v;
      v.cfg = vc;
      v.cfg.backends.clear();
      v.vip_id = SLUICE_MAX_VIPS;
      const Vip* old = nullptr;
      for (const Vip& o : prev.vips)
        if (same_key(o.cfg, vc)) old = &o;
      const FastpathState::Vip* rv = nullptr;
      if (old != nullptr) {
        v.vip_id = old->vip_id;
        if (old->cfg.table_size == vc.table_size && old->cfg.table_size_auto == vc.table_size_auto)
          v.built = old->built;
      } else if (recovered != nullptr) {
        for (const auto& r : recovered->vips)
          if (key_matches(r.key, vc)) rv = &r;
        if (rv != nullptr) v.vip_id = rv->vip_id;
      }
      for (const BackendConfig& bc : vc.backends) {
        const Backend* ob = nullptr;
        if (old != nullptr)
          for (const Backend& b : old->backends)
            if (b.cfg.addr == bc.addr) ob = &b;
        Backend b = make_backend(bc, ob, vc.policy);
        if (ob == nullptr) {
          b.id = recovered_id(bc.addr, rv != nullptr ? &rv->backend_ids : nullptr);
          if (b.id != SLUICE_BACKEND_NONE) claimed[b.id & kSlotMask] = true;
        }
        v.backends.push_back(std::move(b));
      }
      m.vips.push_back(std::move(v));
    }
    // Drained backends no table names: by address.
    for (Vip& v : m.vips)
      for (Backend& b : v.backends)
        if (b.id == 0 || b.id == SLUICE_BACKEND_NONE) {
          b.id = recovered_id(b.cfg.addr, nullptr);
          if (b.id != SLUICE_BACKEND_NONE) claimed[b.id & kSlotMask] = true;
        }
    for (Vip& v : m.vips)
      for (Backend& b : v.backends)
        if (b.id != 0 && b.id != SLUICE_BACKEND_NONE) slot_used[b.id & kSlotMask] = true;
    for (Vip& v : m.vips)
      if (v.vip_id < SLUICE_MAX_VIPS) vip_used[v.vip_id] = true;
    for (Vip& v : m.vips) {
      if (v.vip_id >= SLUICE_MAX_VIPS) {
        auto id = alloc_vip_id(vip_used);
        if (!id.ok()) return id.error();
        v.vip_id = id.value();
      }
      for (Backend& b : v.backends) {
        if (b.id != 0 && b.id != SLUICE_BACKEND_NONE) continue;
        auto id = alloc_backend_id(slot_used);
        if (!id.ok()) return id.error();
        b.id = id.value();
      }
    }
    return m;
  }
};

Balancer::Balancer(std::unique_ptr<State> state) : s_(std::move(state)) {}
Balancer::Balancer(Balancer&&) noexcept = default;
Balancer& Balancer::operator=(Balancer&&) noexcept = default;
Balancer::~Balancer() = default;

Result<Balancer> Balancer::create(Config config, std::vector<std::unique_ptr<Fastpath>> fastpaths) {
  auto s = std::make_unique<State>();
  s->fastpaths = std::move(fastpaths);
  const FastpathState* recovered = nullptr;
  for (const auto& fp : s->fastpaths) {
    const FastpathState& st = fp->initial_state();
    if (recovered == nullptr) recovered = &st;
    for (size_t slot = 0; slot < st.slots.size() && slot < kSlots; ++slot) {
      const sluice_backend& b = st.slots[slot];
      if ((b.id & kSlotMask) == slot) s->slot_last_id[slot] = std::max(s->slot_last_id[slot], b.id);
      if ((b.flags & SLUICE_BACKEND_VALID) != 0) s->slot_held[slot] = true;
    }
    for (const auto& v : st.vips)
      if (v.vip_id < SLUICE_MAX_VIPS) s->vip_held[v.vip_id] = true;
  }
  s->config = config;
  // Recovered VIP ids and backend ids are the model's own: not held.
  auto m = s->model_of(config, Model{}, recovered);
  if (!m.ok()) return m.error();
  s->pending = std::move(m.value());
  for (const Vip& v : s->pending.vips) {
    s->vip_held[v.vip_id] = false;
    for (const Backend& b : v.backends) s->slot_held[b.id & kSlotMask] = false;
  }
  return Balancer(std::move(s));
}

const Config& Balancer::config() const { return s_->config; }
uint64_t Balancer::generation() const { return s_->generation; }
std::span<const std::unique_ptr<Fastpath>> Balancer::fastpaths() const { return s_->fastpaths; }
bool Balancer::dirty() const { return s_->dirty; }

Status Balancer::add_vip(VipConfig vip) {
  if (vip.name.empty()) vip.name = default_vip_name(vip);
  if (auto st = s_->check_vip(vip, nullptr); !st.ok()) return st;
  std::vector<bool> vip_used = s_->occupied_vip_ids();
  auto id = State::alloc_vip_id(vip_used);
  if (!id.ok()) return id.error();
  Vip v;
  v.cfg = vip;
  v.cfg.backends.clear();
  v.vip_id = id.value();
  std::vector<bool> slot_used = s_->occupied_slots();
  for (const BackendConfig& bc : vip.backends) {
    Backend b = State::make_backend(bc, nullptr, vip.policy);
    auto bid = s_->alloc_backend_id(slot_used);
    if (!bid.ok()) return bid.error();
    b.id = bid.value();
    v.backends.push_back(std::move(b));
  }
  s_->pending.vips.push_back(std::move(v));
  s_->dirty = true;
  return Ok{};
}

Status Balancer::remove_vip(std::string_view vip) {
  auto& vips = s_->pending.vips;
  auto it = std::find_if(vips.begin(), vips.end(), [&](const Vip& v) { return v.cfg.name == vip; });
  if (it == vips.end()) return not_found_vip(vip);
  vips.erase(it);
  s_->dirty = true;
  return Ok{};
}

Status Balancer::add_backend(std::string_view vip, BackendConfig backend) {
  Vip* v = s_->find_vip(vip);
  if (v == nullptr) return not_found_vip(vip);
  if (State::find_backend(*v, backend.addr) != nullptr)
    return Error{-EEXIST,
                 "VIP \"" + std::string(vip) + "\" has backend " + backend.addr.to_string()};
  if (auto st = check_backend(backend, v->cfg, s_->config); !st.ok()) return st;
  for (const Vip& o : s_->pending.vips)
    if (o.cfg.addr == backend.addr) return State::backend_at_vip(backend.addr, o.cfg.name);
  const uint32_t m =
      v->cfg.table_size_auto ? maglev_auto_table_size(v->backends.size() + 1) : v->cfg.table_size;
  if (v->backends.size() + 1 > m) return invalid("more backends than table entries");
  std::vector<bool> slot_used = s_->occupied_slots();
  auto id = s_->alloc_backend_id(slot_used);
  if (!id.ok()) return id.error();
  Backend b = State::make_backend(backend, nullptr, v->cfg.policy);
  b.id = id.value();
  v->backends.push_back(std::move(b));
  s_->dirty = true;
  return Ok{};
}

Status Balancer::remove_backend(std::string_view vip, const IpAddress& addr) {
  Vip* v = s_->find_vip(vip);
  if (v == nullptr) return not_found_vip(vip);
  auto it = std::find_if(v->backends.begin(), v->backends.end(),
                         [&](const Backend& b) { return b.cfg.addr == addr; });
  if (it == v->backends.end())
    return Error{-ENOENT, "VIP \"" + std::string(vip) + "\" has no backend " + addr.to_string()};
  v->backends.erase(it);
  s_->dirty = true;
  return Ok{};
}

Status Balancer::set_weight(std::string_view vip, const IpAddress& addr, uint32_t weight) {
  if (weight > kMaxWeight) return invalid("weight must be 0..65535");
  Vip* v = s_->find_vip(vip);
  if (v == nullptr) return not_found_vip(vip);
  Backend* b = State::find_backend(*v, addr);
  if (b == nullptr)
    return Error{-ENOENT, "VIP \"" + std::string(vip) + "\" has no backend " + addr.to_string()};
  b->cfg.weight = weight;
  b->policy_weight.reset();
  s_->dirty = true;
  return Ok{};
}

Status Balancer::drain(std::string_view vip, const IpAddress& addr) {
  return set_weight(vip, addr, 0);
}

Status Balancer::set_backend_health(std::string_view vip, const IpAddress& addr, Health health,
                                    std::optional<double> rtt_us, std::string last_check,
                                    std::optional<ProbeCounters> probes) {
  Vip* v = s_->find_vip(vip);
  if (v == nullptr) return not_found_vip(vip);
  Backend* b = State::find_backend(*v, addr);
  if (b == nullptr)
    return Error{-ENOENT, "VIP \"" + std::string(vip) + "\" has no backend " + addr.to_string()};
  if (health == Health::kUnchecked && !b->cfg.health_check.empty())
    return invalid("backend " + addr.to_string() + " has a health check: up or down");
  if (b->health != health) s_->dirty = true;
  b->health = health;
  b->rtt_us = rtt_us;
  b->last_check = std::move(last_check);
  if (probes) b->probes = probes;
  return Ok{};
}

Status Balancer::set_effective_weights(std::string_view vip,
                                       std::span<const BackendWeight> weights) {
  Vip* v = s_->find_vip(vip);
  if (v == nullptr) return not_found_vip(vip);
  std::vector<Backend*> targets;
  for (const BackendWeight& w : weights) {
    if (w.weight > kMaxWeight) return invalid("weight must be 0..65535");
    Backend* b = State::find_backend(*v, w.addr);
    if (b == nullptr)
      return Error{-ENOENT,
                   "VIP \"" + std::string(vip) + "\" has no backend " + w.addr.to_string()};
    targets.push_back(b);
  }
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i]->policy() != weights[i].weight) s_->dirty = true;
    targets[i]->policy_weight = weights[i].weight;
  }
  return Ok{};
}

Result<PublishReport> Balancer::publish() { return s_->commit(); }

void Balancer::discard() {
  s_->pending = s_->committed;
  s_->dirty = false;
}

namespace {

// What a reload cannot change in a running process: the fast paths' load-
// time sizes and constants, and the sockets the daemon opened. Returns one
// line per difference; empty when the reload may proceed.
std::string restart_only_changes(const Config& old_c, const Config& new_c) {
  std::string out;
  const auto differs = [&](bool changed, const std::string& what) {
    if (changed) out += (out.empty() ? "" : "; ") + what;
  };
  differs(old_c.hash_seed != new_c.hash_seed, "hash_seed");
  const FlowTableConfig& a = old_c.flow_table;
  const FlowTableConfig& b = new_c.flow_table;
  differs(a.flows_per_core != b.flows_per_core || a.probation_per_core != b.probation_per_core ||
              a.tcp_idle_ms != b.tcp_idle_ms || a.udp_idle_ms != b.udp_idle_ms,
          "[flow_table]");
  differs(old_c.control.path != new_c.control.path || old_c.control.mode != new_c.control.mode ||
              old_c.control.group != new_c.control.group,
          "[control]");
  differs(old_c.metrics.listen != new_c.metrics.listen, "[metrics] listen");
  differs(old_c.xdp.has_value() != new_c.xdp.has_value() ||
              (old_c.xdp && (old_c.xdp->interfaces != new_c.xdp->interfaces ||
                             old_c.xdp->mode != new_c.xdp->mode)),
          "[xdp] interfaces or mode");
  const auto dpdk_fixed = [](const DpdkConfig& d) {
    return std::tie(d.ports, d.kernel_port, d.main_lcore, d.lcores, d.worker_cpus, d.distribution,
                    d.rx_desc, d.tx_desc, d.mbufs, d.mbuf_cache, d.hugepages, d.memory_mb,
                    d.file_prefix, d.eal_args, d.link_wait_ms);
  };
  differs(old_c.dpdk.has_value() != new_c.dpdk.has_value() ||
              (old_c.dpdk && dpdk_fixed(*old_c.dpdk) != dpdk_fixed(*new_c.dpdk)),
          "[dpdk] EAL, ports, lcores or memory");
  differs(old_c.bgp != new_c.bgp, "[bgp]");
  // The fast path's cache maps and the filler are sized and started with
  // [cache]. A VIP's entries stay in those maps under its id: while its
  // cache is off no write invalidates them, and a VIP added later may take
  // the id over, so turning a cache on or off, or adding or removing a
  // cached VIP, would serve stale or foreign values.
  differs(!(old_c.cache == new_c.cache), "[cache]");
  std::string vips;
  const auto cache_changed = [&](const Config& from, const Config& to, bool matched_too) {
    for (const VipConfig& v : from.vips) {
      const auto other = std::find_if(to.vips.begin(), to.vips.end(),
                                      [&](const VipConfig& w) { return same_key(v, w); });
      const bool was = v.cache;
      const bool now = other != to.vips.end() && other->cache;
      if (was != now && (matched_too || other == to.vips.end()))
        vips += (vips.empty() ? "" : ", ") + v.name;
    }
  };
  cache_changed(old_c, new_c, true);
  cache_changed(new_c, old_c, false);
  differs(!vips.empty(), "the cache of VIP " + vips + " (turned on or off, added or removed)");
  return out;
}

}  // namespace

Result<PublishReport> Balancer::reload(Config config) {
  if (const std::string r = restart_only_changes(s_->config, config); !r.empty())
    return invalid("the file changes settings that need a restart (" + r +
                   "); nothing changed: restart the daemon to apply them");
  discard();
  const Config old_config = s_->config;
  s_->config = config;
  size_t total = config.backend_count();
  if (total > kSlots) {
    s_->config = old_config;
    return invalid("at most " + std::to_string(kSlots) + " backends over all VIPs, got " +
                   std::to_string(total));
  }
  auto m = s_->model_of(config, s_->committed, nullptr);
  if (!m.ok()) {
    s_->config = old_config;
    return m.error();
  }
  s_->pending = std::move(m.value());
  const bool was_published = s_->published;
  auto r = s_->commit();
  if (!r.ok()) {
    s_->config = old_config;
    return r;
  }
  // A reload counts as a generation even when it changed nothing.
  if (!r.value().changed && was_published) ++s_->generation;
  return r;
}

std::vector<VipView> Balancer::vips() const {
  std::vector<VipView> out;
  for (const Vip& v : s_->pending.vips) {
    VipView view;
    view.name = v.cfg.name;
    view.addr = v.cfg.addr;
    view.port = v.cfg.port;
    view.protocol = v.cfg.protocol;
    view.policy = v.cfg.policy;
    view.hash = v.cfg.hash;
    view.cache = v.cfg.cache;
    view.vip_id = v.vip_id;
    view.table_size = v.built.table ? v.built.table_size : 0;
    view.panic = v.built.panic;
    view.backends = v.backends.size();
    for (const Backend& b : v.backends)
      if (b.health != Health::kDown && b.cfg.weight > 0) ++view.backends_up;
    out.push_back(std::move(view));
  }
  return out;
}

Result<std::vector<BackendView>> Balancer::backends(std::string_view vip) const {
  if (!vip.empty() && s_->find_vip(vip) == nullptr) return not_found_vip(vip);
  std::vector<BackendView> out;
  for (const Vip& v : s_->pending.vips) {
    if (!vip.empty() && v.cfg.name != vip) continue;
    std::map<uint32_t, uint32_t> entries;
    if (v.built.table)
      for (uint32_t id : *v.built.table) ++entries[id];
    for (const Backend& b : v.backends) {
      BackendView view;
      view.vip = v.cfg.name;
      view.addr = b.cfg.addr;
      view.id = b.id;
      view.weight = b.cfg.weight;
      view.capacity = b.cfg.capacity;
      view.health_check = b.cfg.health_check;
      view.health = b.health;
      view.rtt_us = b.rtt_us;
      view.last_check = b.last_check;
      view.probes = b.probes;
      view.policy_weight = b.policy();
      for (const auto& [id, w] : v.built.inputs)
        if (id == b.id) view.effective_weight = w;
      if (auto it = entries.find(b.id); it != entries.end()) view.table_entries = it->second;
      if (s_->active_flows) {
        auto it = s_->active_flows->find(b.id);
        view.active_flows = it == s_->active_flows->end() ? 0 : it->second;
      }
      out.push_back(std::move(view));
    }
  }
  return out;
}

Status Balancer::refresh_active_flows() {
  ActiveFlowCounts sum;
  for (const auto& fp : s_->fastpaths) {
    auto a = fp->active_flows();
    if (!a.ok()) {
      s_->active_flows.reset();
      return a.error();
    }
    for (const auto& [id, n] : a.value()) sum[id] += n;
  }
  s_->active_flows = std::move(sum);
  return Ok{};
}

Result<BalancerStats> Balancer::stats() const {
  BalancerStats out;
  // Every counter struct is a run of u64 counters: sum them word by word.
  auto add = [](auto& into, const auto& from) {
    uint64_t a[sizeof into / sizeof(uint64_t)];
    uint64_t b[sizeof from / sizeof(uint64_t)];
    std::memcpy(a, &into, sizeof a);
    std::memcpy(b, &from, sizeof b);
    for (size_t i = 0; i < sizeof a / sizeof a[0]; ++i) a[i] += b[i];
    std::memcpy(&into, a, sizeof a);
  };
  for (const Vip& v : s_->committed.vips) {
    out.vips.push_back({v.cfg.name, {}});
    for (const Backend& b : v.backends) out.backends.push_back({v.cfg.name, b.cfg.addr, {}});
  }
  bool per_cpu = false;
  for (const auto& fp : s_->fastpaths) {
    auto g = fp->global_stats();
    if (!g.ok()) return g.error();
    add(out.global, g.value());
    if (const auto size = fp->flow_table_size()) {
      if (!out.flow_table) out.flow_table.emplace();
      out.flow_table->capacity += size->capacity;
      out.flow_table->probation += size->probation;
    } else {
      per_cpu = true;
    }
    for (const WorkerStats& w : fp->worker_stats()) out.workers.push_back(w);
    size_t vi = 0;
    size_t bi = 0;
    for (const Vip& v : s_->committed.vips) {
      auto vs = fp->vip_stats(v.vip_id);
      if (!vs.ok()) return vs.error();
      add(out.vips[vi++].counters, vs.value());
      for (const Backend& b : v.backends) {
        auto bs = fp->backend_stats(b.id);
        if (!bs.ok()) return bs.error();
        add(out.backends[bi++].counters, bs.value());
      }
    }
  }
  if (per_cpu) out.flow_table.reset();
  return out;
}

Result<IpAddress> Balancer::owner(std::string_view vip, uint32_t hash) const {
  for (const Vip& v : s_->committed.vips) {
    if (v.cfg.name != vip) continue;
    if (!s_->published || !v.built.table || v.built.table->empty())
      return Error{-ENOENT, "VIP \"" + std::string(vip) + "\" has no published table"};
    const uint32_t id = (*v.built.table)[hash % v.built.table->size()];
    for (const Backend& b : v.backends)
      if (b.id == id) return b.cfg.addr;
    return Error{-ENOENT, "VIP \"" + std::string(vip) + "\": no backend owns the slot"};
  }
  return not_found_vip(vip);
}

std::vector<IpAddress> Balancer::backend_addresses() const {
  std::vector<IpAddress> out;
  for (const Vip& v : s_->pending.vips)
    for (const Backend& b : v.backends) out.push_back(b.cfg.addr);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace sluice::control
