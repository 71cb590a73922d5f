// SPDX-License-Identifier: BSD-2-Clause
// `sluice maglev`: builds a Maglev table for a backend set with the core's
// builder and prints its balance, and the disruption against a second set.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "control/cli/commands.hpp"
#include "control/maglev_report.hpp"

namespace sluice::cli {

namespace {

// The lists as given: each value a comma-separated list, split by
// split_list() (CLI11's own splitting drops empty items, so a typo such as
// "a,,b" would silently pair the wrong weights with the backends).
struct MaglevArgs {
  std::vector<std::string> backends;
  std::vector<std::string> weights;
  std::vector<std::string> compare;
  std::vector<std::string> compare_weights;
  std::string size = std::to_string(kMaglevDefaultSize);
  bool json = false;
};

// The items of comma-separated `values`. Error -EINVAL for an empty item.
Result<std::vector<std::string>> split_list(const std::vector<std::string>& values,
                                            const char* flag) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    size_t start = 0;
    for (;;) {
      const size_t comma = v.find(',', start);
      std::string item = v.substr(start, comma == std::string::npos ? comma : comma - start);
      if (item.empty())
        return Error{-EINVAL, std::string(flag) + ": an empty item in \"" + v + "\""};
      out.push_back(std::move(item));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

// Addresses and weights (1 each when none are given) into builder input.
Result<std::vector<MaglevBackend>> to_backends(const std::vector<std::string>& addr_args,
                                               const std::vector<std::string>& weight_args,
                                               const char* addrs_flag, const char* weights_flag) {
  auto addrs_split = split_list(addr_args, addrs_flag);
  if (!addrs_split) return addrs_split.error();
  auto weights_split = split_list(weight_args, weights_flag);
  if (!weights_split) return weights_split.error();
  const std::vector<std::string>& addrs = addrs_split.value();
  std::vector<uint32_t> weights;
  for (const std::string& w : weights_split.value()) {
    const bool digits = w.size() <= 5 && w.find_first_not_of("0123456789") == std::string::npos;
    const unsigned long v = digits ? std::stoul(w) : 65536;
    if (v > 65535)
      return Error{-EINVAL,
                   std::string(weights_flag) + ": expected an integer 0..65535, got \"" + w + "\""};
    weights.push_back(static_cast<uint32_t>(v));
  }
  if (!weights.empty() && weights.size() != addrs.size())
    return Error{-EINVAL, std::string(weights_flag) + " gives " + std::to_string(weights.size()) +
                              " weights for " + std::to_string(addrs.size()) + " backends"};
  std::vector<MaglevBackend> out;
  for (size_t i = 0; i < addrs.size(); ++i) {
    auto a = IpAddress::parse(addrs[i]);
    if (!a) return Error{-EINVAL, std::string(addrs_flag) + ": " + a.error().message};
    out.push_back({a.value(), weights.empty() ? 1u : weights[i]});
  }
  return out;
}

std::string percent(double fraction, bool sign = false) {
  char buf[32];
  std::snprintf(buf, sizeof buf, sign ? "%+.3f%%" : "%.3f%%", fraction * 100.0);
  return buf;
}

void print_table(const MaglevReport& r) {
  size_t width = 7;
  for (const auto& row : r.rows) width = std::max(width, row.addr.to_string().size());
  std::printf("%-*s %8s %9s %9s %13s %10s\n", static_cast<int>(width), "backend", "weight",
              "entries", "share", "weight share", "deviation");
  for (const auto& row : r.rows)
    std::printf("%-*s %8u %9u %9s %13s %10s\n", static_cast<int>(width),
                row.addr.to_string().c_str(), row.weight, row.entries, percent(row.share).c_str(),
                percent(row.weight_share).c_str(),
                row.weight > 0 ? percent(row.deviation, true).c_str() : "-");
  std::printf("table size %u entries, %zu backends; max deviation %.1f entries (%s)\n",
              r.table_size, r.rows.size(), r.max_abs_deviation,
              percent(r.max_rel_deviation).c_str());
}

nlohmann::json to_json(const MaglevReport& r) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& row : r.rows)
    rows.push_back({{"address", row.addr.to_string()},
                    {"weight", row.weight},
                    {"entries", row.entries},
                    {"share", row.share},
                    {"weight_share", row.weight_share},
                    {"deviation", row.deviation}});
  return {{"table_size", r.table_size},
          {"backends", rows},
          {"max_abs_deviation", r.max_abs_deviation},
          {"max_rel_deviation", r.max_rel_deviation}};
}

int maglev(const MaglevArgs& args) {
  auto first = to_backends(args.backends, args.weights, "--backends", "--weights");
  if (!first) {
    spdlog::error("{}", first.error().message);
    return kExitUsage;
  }
  std::optional<std::vector<MaglevBackend>> second;
  if (!args.compare.empty()) {
    auto b = to_backends(args.compare, args.compare_weights, "--compare", "--compare-weights");
    if (!b) {
      spdlog::error("{}", b.error().message);
      return kExitUsage;
    }
    second = std::move(b).value();
  } else if (!args.compare_weights.empty()) {
    spdlog::error("--compare-weights needs --compare");
    return kExitUsage;
  }

  uint32_t size = 0;
  if (args.size == "auto") {
    // One size for both sets, so their tables compare slot by slot.
    const size_t n = std::max(first.value().size(), second ? second->size() : size_t{0});
    size = maglev_auto_table_size(n);
  } else {
    const bool digits = !args.size.empty() && args.size.size() <= 10 &&
                        args.size.find_first_not_of("0123456789") == std::string::npos;
    const uint64_t m = digits ? std::stoull(args.size) : 0;
    if (m < kMaglevMinSize || m > kMaglevMaxSize || !is_prime(static_cast<uint32_t>(m))) {
      spdlog::error("--size: expected a prime {}..{} or auto, got {}", kMaglevMinSize,
                    kMaglevMaxSize, args.size);
      return kExitUsage;
    }
    size = static_cast<uint32_t>(m);
  }

  auto r1 = maglev_report(first.value(), size);
  if (!r1) {
    spdlog::error("--backends: {}", r1.error().message);
    return kExitUsage;
  }
  std::optional<MaglevReport> r2;
  std::optional<MaglevDisruptionReport> d;
  if (second) {
    auto r = maglev_report(*second, size);
    if (!r) {
      spdlog::error("--compare: {}", r.error().message);
      return kExitUsage;
    }
    r2 = std::move(r).value();
    auto dr = maglev_disruption_report(r1.value(), *r2);
    if (!dr) {
      spdlog::error("{}", dr.error().message);
      return kExitInvalid;
    }
    d = dr.value();
  }

  if (args.json) {
    nlohmann::json out = to_json(r1.value());
    if (r2) {
      out["compare"] = to_json(*r2);
      out["disruption"] = {{"moved", d->moved}, {"minimum", d->minimum}};
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  print_table(r1.value());
  if (r2) {
    std::printf("\ncompared with:\n");
    print_table(*r2);
    std::printf("\nentries moved: %u of %u (%s); minimum necessary %u", d->moved, size,
                percent(static_cast<double>(d->moved) / size).c_str(), d->minimum);
    if (d->minimum > 0) std::printf(" (%.2fx)", static_cast<double>(d->moved) / d->minimum);
    std::printf("\n");
  }
  return kExitOk;
}

}  // namespace

void add_maglev(CLI::App& app, std::function<int()>* run) {
  CLI::App* sub = app.add_subcommand(
      "maglev",
      "Build a Maglev lookup table for a set of backends and print each backend's entries, "
      "share, weight share and deviation from it; with --compare, also build the table of a "
      "second set and print how many entries moved against the fewest any table could move.");
  auto args = std::make_shared<MaglevArgs>();
  sub->add_option("--backends", args->backends, "Backend addresses, comma-separated")
      ->required();
  sub->add_option("--weights", args->weights,
                  "Their weights (0..65535), comma-separated, in the same order; default 1 each");
  sub->add_option("--size", args->size,
                  "Table size, entries: a prime, or 'auto' (from the larger backend count)")
      ->capture_default_str();
  sub->add_option("--compare", args->compare,
                  "A second backend set, comma-separated: print the disruption between the two");
  sub->add_option("--compare-weights", args->compare_weights, "Weights of the second set");
  sub->add_flag("--json", args->json, "Print JSON for scripts instead of tables");
  sub->callback([run, args] { *run = [args] { return maglev(*args); }; });
}

}  // namespace sluice::cli
