// SPDX-License-Identifier: BSD-2-Clause
// Tolerant reads of the control socket's JSON results, for the code that
// renders them (`sluice ctl`'s tables, the Prometheus exposition): a
// missing key or a value of the wrong kind reads as null or an empty list,
// so a reply from an older or newer daemon renders what it has.
#pragma once

#include <nlohmann/json.hpp>

namespace sluice::json_fields {

/// The member `key` of object `j`; null when `j` is no object or lacks it.
inline const nlohmann::json& field(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kNull;
  if (!j.is_object()) return kNull;
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

/// The array member `key` of object `j`; an empty array when it is missing
/// or no array.
inline const nlohmann::json& list(const nlohmann::json& j, const char* key) {
  static const nlohmann::json kEmpty = nlohmann::json::array();
  const nlohmann::json& v = field(j, key);
  return v.is_array() ? v : kEmpty;
}

}  // namespace sluice::json_fields
