// SPDX-License-Identifier: BSD-2-Clause
// Loader: the XDP load balancer's life on one interface. Open, size and
// load the BPF object with its maps pinned (a restarted daemon re-uses
// them, flows included), attach and detach, publish snapshots hitlessly,
// read the per-CPU counters. A library type: no globals, no output; every
// failure comes back as an Error saying what was being done.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "dataplane/core/ip_address.hpp"
#include "xdp/bpffs.hpp"
#include "xdp/lb_skeleton.hpp"
#include "xdp/next_hop.hpp"
#include "xdp/sluice_lb.h"
#include "xdp/status.hpp"
#include "xdp/unique_fd.hpp"

namespace sluice::xdp {

/// How the program is attached: in the driver (native, XDP_FLAGS_DRV_MODE)
/// or after the kernel built an skb (generic, XDP_FLAGS_SKB_MODE; works on
/// every device, slower).
enum class XdpMode { kNative, kGeneric };

/// "native" / "generic".
const char* to_string(XdpMode mode);

/// Everything fixed at load time.
struct LoaderOptions {
  /// The interface, by name (resolved in the calling thread's network
  /// namespace) or by index; one of the two is required. When both are
  /// given they must name the same interface.
  std::string ifname;
  int ifindex = 0;
  XdpMode mode = XdpMode::kNative;

  /// Established-flow entries per CPU; the flow map (one LRU_HASH shared
  /// by all CPUs, one value per entry) holds this many times
  /// libbpf_num_possible_cpus() entries, each CPU evicting only its share,
  /// so memory grows linearly with the CPU count.
  uint32_t flows_per_cpu = 65536;
  /// Probation (one-packet) flow slots per CPU: each CPU's direct-mapped
  /// run of one array holding this many times libbpf_num_possible_cpus()
  /// slots (a new flow takes slot hash % this of its CPU's run, overwriting
  /// the flow there), so memory grows linearly with the CPU count; the
  /// product must fit 32 bits (-EINVAL).
  uint32_t probation_per_cpu = 16384;
  /// Seed of the flow hash (dataplane/abi/flow.h); instances behind the same
  /// ECMP group need the same seed.
  uint32_t hash_seed = 0;
  /// Idle time after which a flow entry is a miss, ms (> 0).
  uint32_t tcp_idle_ms = 300 * 1000;
  uint32_t udp_idle_ms = 30 * 1000;
  /// Hot-object cache entries (slots of sluice_cache_entries, 1,680 bytes
  /// each), > 0; xdp/cache.hpp fills them.
  uint32_t cache_entries = 1024;
  /// Misses of a key per CPU and period that make it hot (> 0).
  uint32_t cache_hot_threshold = 32;

  /// The BPF filesystem; mounted there when it is not one yet.
  std::string bpffs_root = kBpffsRoot;
  /// Folder the maps are pinned in; empty means
  /// "<bpffs_root>/sluice/<ifname>". Must be on a BPF filesystem.
  std::string pin_root;

  /// Verifier log: at level 0 the log is only asked for when the load fails
  /// (libbpf retries at level 1) and comes back in the Error; 1 or 2 always
  /// (Loader::verifier_log()). `verifier_log_size` bytes of buffer; too
  /// small a buffer for the log fails the load with -ENOSPC.
  uint32_t verifier_log_level = 0;
  size_t verifier_log_size = 4u << 20;
};

/// The default pin folder: "<bpffs_root>/sluice/<ifname>".
std::string default_pin_root(const std::string& bpffs_root, const std::string& ifname);

/// One VIP of a snapshot.
struct SnapshotVip {
  /// Address, port (0: every port), protocol, family; pad bytes and unused
  /// address bytes are ignored (zeroed by the loader).
  sluice_vip_key key{};
  /// vip_id (< SLUICE_MAX_VIPS, unique, and fixed for as long as the VIP
  /// exists) and flags (SLUICE_VIP_*). table_size is taken from `table`.
  sluice_vip_meta meta{};
  /// The Maglev lookup table, mapped to backend ids: M entries, M a prime in
  /// [SLUICE_MAGLEV_MIN_SIZE, SLUICE_MAGLEV_MAX_SIZE]; each entry a backend
  /// id of the snapshot or SLUICE_BACKEND_NONE (no backend: a counted drop).
  /// Only read during publish().
  std::span<const uint32_t> table;
};

/// Everything the fast path needs, published as a whole by Loader::publish.
struct Snapshot {
  std::vector<SnapshotVip> vips;
  /// Backends by id (id, addr, family; flags may hold
  /// SLUICE_BACKEND_DRAINING, VALID is the loader's). A backend id keeps its
  /// address for life; a removed backend's slot (id & (SLUICE_MAX_BACKENDS -
  /// 1)) is reused only for a new id, by a later publish.
  std::vector<sluice_backend> backends;
  /// The outer headers: src_v4 must be set if any backend is IPv4, src_v6
  /// if any is IPv6.
  sluice_encap_config encap{};
  /// The static next hop (operator-given MACs; ifindex 0 for one-armed
  /// set-ups): the next hop of every backend without one of its own
  /// (Loader::refresh_next_hops); nullopt leaves it as it is.
  std::optional<sluice_next_hop> next_hop;
};

/// The next hops of a set of addresses (backends), as resolved at one
/// time: each one's NextHop, or why it has none.
struct NextHops {
  struct Entry {
    IpAddress target;
    std::optional<NextHop> hop;  ///< nullopt: not resolved (error says why)
    Error error{};  ///< why not, when hop is nullopt
  };
  std::vector<Entry> entries;
};

/// Established flows the fast path holds, by backend (Loader::active_flows).
struct ActiveFlows {
  /// Backend id -> live (flow, CPU) entries naming it. A backend without
  /// live flows is absent.
  std::map<uint32_t, uint64_t> by_backend;
  /// Flow-map keys read (live or not).
  uint64_t keys_read = 0;
  /// false: the walk stopped at its key limit before the map's end.
  bool complete = true;
};

/// The sluice_lb program and its maps on one interface. Move-only.
///
/// Destroying a Loader neither detaches the program nor unpins the maps:
/// the interface keeps forwarding with the last published snapshot, and the
/// next Loader for the interface picks up the pinned maps (established
/// flows included) and replaces the running program atomically. detach()
/// and unpin() are the explicit ends.
///
/// Not thread-safe: one caller at a time (the control thread). Only one
/// Loader (one process) may publish to an interface's maps at a time; a
/// Loader reads what the maps hold when it loads and keeps track of its own
/// writes after that.
class Loader {
 public:
  /// Checks the options, makes sure bpffs is mounted and the pin folder
  /// exists, opens the BPF object, sets the load-time constants and map
  /// sizes, pins every map under the pin folder (re-using maps already
  /// pinned there, which must have been made with the same sizes) and loads
  /// the program through the verifier. Does not attach.
  /// Errors: -EINVAL (bad options, or a pinned map made with other sizes,
  /// named), -ENODEV (no such interface), bpffs/mkdir errnos, and the load's
  /// errno with the map sizes and the verifier log's tail.
  [[nodiscard]] static Result<Loader> load(const LoaderOptions& options);

  Loader(Loader&&) noexcept = default;
  Loader& operator=(Loader&&) noexcept = default;
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;
  ~Loader() = default;

  /// Attaches the program to the interface in the configured mode. A sluice
  /// program already attached in that mode (a previous instance) is
  /// replaced atomically (XDP_FLAGS_REPLACE): no packet meets an interface
  /// without a program. Attaching again is a no-op.
  /// Errors: -EBUSY (another, non-sluice XDP program is attached; it is
  /// left alone), -EEXIST (sluice is attached in the other mode: detach it
  /// first), or the attach errno (e.g. -EOPNOTSUPP: no native XDP here).
  [[nodiscard]] Status attach();

  /// Detaches sluice's program from the interface (see detach_interface).
  [[nodiscard]] Status detach();

  /// Removes the pinned maps and the pin folder; the maps themselves live
  /// on while a program or descriptor still holds them (this Loader does
  /// until destroyed). Missing pins are not an error.
  [[nodiscard]] Status unpin();

  /// Removes only the pins this Loader's load() created (maps that were
  /// not pinned before it), and the pin folder if that leaves it empty: the
  /// undo of a load whose attach failed, which must not take away maps a
  /// running or earlier instance pinned. Missing pins are not an error.
  /// Errors: unlink/rmdir errnos, naming the path.
  [[nodiscard]] Status unpin_created();

  /// Publishes a snapshot: validates it whole (nothing is written if it is
  /// invalid), then applies the difference to the maps in the order that
  /// keeps every packet correctly routed (see the comment in publish.cpp).
  /// Errors: -EINVAL (invalid snapshot, named), -EBUSY (a new backend needs
  /// a slot a backend removed by this same snapshot still holds: publish
  /// the removal first), or a map-update errno; after such a late error the
  /// maps hold a consistent mix of old and new, and publishing again
  /// completes the change.
  [[nodiscard]] Status publish(const Snapshot& snapshot);

  /// Writes the static next hop (neighbour MAC, egress MAC, egress
  /// ifindex), the one backends without their own use. An ifindex of 0 or
  /// of this Loader's interface is sent with XDP_TX (stored as 0); another
  /// interface (of the calling thread's network namespace) is added to the
  /// devmap sluice_tx_ports first and sent to with XDP_REDIRECT, and
  /// interfaces no next hop names any more leave the devmap after.
  /// Native-mode redirection needs an egress driver with XDP transmit (a
  /// veth also needs an XDP program on its peer). The 16-byte entry is
  /// rewritten in place: a packet forwarded during the write may leave with
  /// a mix of old and new MACs and interface.
  /// Errors: the devmap update's errno (-EINVAL: no such interface), or
  /// the map write's.
  [[nodiscard]] Status set_next_hop(const sluice_next_hop& next_hop);

  /// Resolves the next hop of every address in `targets` (the backends'
  /// addresses) through `resolver` (which must belong to the interface's
  /// network namespace) and gives each backend with one of these addresses
  /// its own next hop (apply_next_hops): XDP_TX where it is behind this
  /// interface (one-armed), else XDP_REDIRECT to its interface
  /// (multi-armed). Call it periodically to follow route and neighbour
  /// changes. Errors: as apply_next_hops.
  [[nodiscard]] Status refresh_next_hops(NextHopResolver& resolver,
                                         std::span<const IpAddress> targets,
                                         std::chrono::milliseconds wait);
  /// refresh_next_hops's resolution, without the write: every target's
  /// next hop or its error (the resolver's, every message naming the
  /// target). Waits at most `wait` in all: unknown neighbours are asked
  /// for together, then waited for together. It reads only what is fixed at load (the interface), so it
  /// may run on another thread than the one publishing, with a resolver of
  /// its own, e.g. to keep that thread from waiting for neighbours.
  [[nodiscard]] NextHops resolve_next_hops(NextHopResolver& resolver,
                                           std::span<const IpAddress> targets,
                                           std::chrono::milliseconds wait) const;
  /// refresh_next_hops's write. `hops` replaces what the Loader knows of
  /// next hops: each published backend whose address has a resolved entry
  /// gets it in sluice_backend_hops; every other backend loses its own and
  /// falls back to the static next hop, or is dropped (counted as
  /// tx_failed) where there is none. A backend published later takes its
  /// address's entry before its first packet. Entries are written only
  /// where they change. In native mode an entry whose egress is another
  /// interface that cannot transmit XDP frames (xdp_features() without
  /// kXdpActNdoXmit, e.g. a veth whose peer has no XDP program and no GRO)
  /// counts as not resolved (-EOPNOTSUPP, "egress <if> cannot transmit XDP
  /// frames"); one the kernel says nothing about (< 6.3) is used.
  /// Errors: map and devmap writes' errnos; otherwise,
  /// when some targets were not resolved, the first one's code with every
  /// unresolved target's message (the others are applied all the same).
  [[nodiscard]] Status apply_next_hops(const NextHops& hops);

  /// Counters summed over all possible CPUs, and per CPU (index = CPU).
  /// Errors: the map-lookup errno; -EINVAL for an id out of range.
  [[nodiscard]] Result<sluice_global_stats> global_stats() const;
  [[nodiscard]] Result<std::vector<sluice_global_stats>> global_stats_per_cpu() const;
  [[nodiscard]] Result<sluice_vip_stats> vip_stats(uint32_t vip_id) const;
  [[nodiscard]] Result<std::vector<sluice_vip_stats>> vip_stats_per_cpu(uint32_t vip_id) const;
  /// By backend id (its slot's counters).
  [[nodiscard]] Result<sluice_backend_stats> backend_stats(uint32_t backend_id) const;
  [[nodiscard]] Result<std::vector<sluice_backend_stats>> backend_stats_per_cpu(
      uint32_t backend_id) const;

  /// Counts the established flows of each backend: walks the flow map
  /// (sluice_flows, one value per key shared by every CPU) and counts the
  /// values in state ESTABLISHED whose last_seen is within the protocol's
  /// idle timeout (the packet path's own test, lb_flow_expired: last_seen
  /// is ms of CLOCK_MONOTONIC_COARSE truncated to 32 bits, compared by
  /// signed difference). Reads at most `max_keys` keys (0: the map's
  /// max_entries), in batches of 256 (BPF_MAP_LOOKUP_BATCH, kernel >= 5.6;
  /// key by key where the kernel lacks it).
  ///
  /// Cost: O(keys), one syscall per 256 keys, copying 52 bytes per key; perf/RESULTS.md "Control plane" has
  /// figures. Call it every few seconds, not per packet or per probe.
  /// The map changes under the walk: a count is a sample, and a key
  /// deleted under a key-by-key walk restarts it (still bounded by
  /// max_keys). Errors: the map-read errno.
  [[nodiscard]] Result<ActiveFlows> active_flows(uint32_t max_keys = 0) const;

  /// Deletes every flow-map entry (sluice_flows) of flows to `vip`, so the
  /// next packet of each is placed by the current Maglev table. For an
  /// instance behind ECMP about to announce the VIP again: flows the router
  /// moved away while it was withdrawn may come back, and an entry it kept
  /// (or re-pointed while its view of the backends was wrong) could send
  /// them elsewhere than the other instances did. Walks the whole map (as
  /// active_flows, key by key) and deletes with one syscall per key.
  /// Returns the entries deleted. Errors: the map's errno.
  [[nodiscard]] Result<uint64_t> forget_flows_to(const IpAddress& vip) const;

  [[nodiscard]] int ifindex() const { return ifindex_; }
  [[nodiscard]] const std::string& ifname() const { return ifname_; }
  [[nodiscard]] XdpMode mode() const { return mode_; }
  [[nodiscard]] const std::string& pin_root() const { return pin_root_; }
  /// Whether load() found pinned maps and re-used them.
  [[nodiscard]] bool reused_pinned_maps() const { return reused_; }
  /// Pinned maps of an older build that load() unpinned and made afresh
  /// instead of refusing them (sluice_newflows of another type, whose
  /// probation entries are lost; sluice_stats of another value size, whose
  /// counters restart from zero): "<path> (<what differed>)" each, for the
  /// caller to log.
  [[nodiscard]] const std::vector<std::string>& replaced_pinned_maps() const {
    return replaced_pins_;
  }
  /// The verifier log of the load (verifier_log_level > 0), else empty.
  [[nodiscard]] const std::string& verifier_log() const { return verifier_log_; }
  [[nodiscard]] int prog_fd() const;
  /// The kernel's id of the loaded program.
  [[nodiscard]] uint32_t prog_id() const { return prog_id_; }
  /// The skeleton, for embedders and tests that read maps directly.
  [[nodiscard]] sluice_lb_bpf* skeleton() const { return skel_.get(); }

 private:
  // What the maps hold for one VIP, as last written.
  struct VipState {
    sluice_vip_key key{};
    sluice_vip_meta meta{};
    std::vector<uint32_t> table;
  };
  using VipKeyBytes = std::array<uint8_t, sizeof(sluice_vip_key)>;

  Loader(LbSkeleton skel, int ifindex, std::string ifname, XdpMode mode, std::string pin_root)
      : skel_(std::move(skel)),
        ifindex_(ifindex),
        ifname_(std::move(ifname)),
        mode_(mode),
        pin_root_(std::move(pin_root)) {}

  // nh with this interface's ifindex turned into 0 (XDP_TX).
  [[nodiscard]] sluice_next_hop normalised(const sluice_next_hop& nh) const;
  // What sluice_backend_hops should hold at `slot` for backend b.
  [[nodiscard]] sluice_backend_hop hop_for(const sluice_backend& b) const;
  // Writes `dflt` (if set) as the static next hop and `want` (by slot,
  // only where it differs) into sluice_backend_hops: interfaces they name
  // join the devmap first, those no longer named leave it after.
  [[nodiscard]] Status write_next_hops(const std::optional<sluice_next_hop>& dflt,
                                       const std::vector<sluice_backend_hop>& want);
  // Brings every backend's own next hop in line with resolved_; `live`
  // says which slots hold a backend; the others keep what they hold, or
  // are emptied with `clear_others`.
  [[nodiscard]] Status sync_backend_hops(const std::vector<bool>& live, bool clear_others);
  [[nodiscard]] Status init_barrier();
  [[nodiscard]] Status read_state();
  [[nodiscard]] Status wait_for_packets();
  [[nodiscard]] Status write_table(uint32_t vip_id, std::span<const uint32_t> table);
  [[nodiscard]] Status write_meta(const sluice_vip_key& key, const sluice_vip_meta& meta,
                                  bool* barrier_due);
  [[nodiscard]] Status write_slot(uint32_t slot, const sluice_backend& b);
  [[nodiscard]] Status write_vip_slot(uint32_t index, const sluice_vip_slot& slot);
  [[nodiscard]] Status mark_vip_slots(const std::vector<sluice_vip_slot>& want);
  [[nodiscard]] Status write_vip_slots(const std::vector<sluice_vip_slot>& want);
  [[nodiscard]] Status sync_vip_slots();
  [[nodiscard]] Status zero_percpu(bpf_map* map, uint32_t key, size_t value_size);
  template <class T>
  [[nodiscard]] Result<std::vector<T>> read_percpu(bpf_map* map, uint32_t key) const;
  [[nodiscard]] int map_fd(bpf_map* map) const;
  static VipKeyBytes key_bytes(const sluice_vip_key& k);

  LbSkeleton skel_;
  int ifindex_ = 0;
  std::string ifname_;
  XdpMode mode_ = XdpMode::kNative;
  std::string pin_root_;
  bool reused_ = false;
  std::vector<std::string> created_pins_;  // paths load() pinned anew
  std::vector<std::string> replaced_pins_;  // older builds' pins load() replaced
  uint32_t prog_id_ = 0;
  std::string verifier_log_;
  // A private map-in-map whose update makes the kernel wait for every
  // running BPF program (wait_for_packets).
  UniqueFd barrier_outer_;
  UniqueFd barrier_inner_;
  // The kernel's state as last read or written.
  std::map<VipKeyBytes, VipState> vips_;
  std::vector<sluice_backend> slots_;  // SLUICE_MAX_BACKENDS
  std::vector<bool> table_present_;    // SLUICE_MAX_VIPS: outer slot holds a table
  std::vector<sluice_vip_slot> vip_slots_;  // SLUICE_VIP_SLOTS
  std::optional<sluice_encap_config> encap_;
  std::optional<sluice_next_hop> next_hop_;
  std::vector<sluice_backend_hop> hops_;  // SLUICE_MAX_BACKENDS, as sluice_backend_hops holds them
  // The last resolved next hops by backend address (normalised); an
  // address absent here has none.
  std::map<IpAddress, sluice_next_hop> resolved_;
};

/// Detaches sluice's XDP program from `ifindex` (whichever mode it is in),
/// only if it is still sluice's (XDP_FLAGS_REPLACE with the program found).
/// This is `sluice detach IFACE` without a running daemon.
/// Errors: -ENOENT (no XDP program attached), -EBUSY (the attached program
/// is not sluice's; left alone), or the detach errno.
[[nodiscard]] Status detach_interface(int ifindex);

/// Removes sluice's pinned maps from `pin_root` and then the folder, and
/// its parent when that is a folder named "sluice" left empty (the default
/// layout <bpffs>/sluice/<ifname>: the last interface takes it along).
/// Missing pins are fine; -ENOTEMPTY if other files remain in `pin_root`.
[[nodiscard]] Status unpin_maps(const std::string& pin_root);

}  // namespace sluice::xdp
