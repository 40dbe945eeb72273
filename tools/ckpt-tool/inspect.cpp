// SPDX-License-Identifier: MIT
// ckpt-tool inspect STORE: what a store holds — medium and writer, format, epochs and what each
// wrote, regions, free space. Opens the store without modifying it.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "key.hpp"
#include "store_open.hpp"

namespace ckpt_tool {

namespace {

int inspect(const std::string& path, bool json) {
  std::unique_ptr<ckpt::store::Store> s = open_for_inspection(path);
  ckpt::store::StoreStat st;
  if (int r = s->stat(&st); r < 0) throw Error{kFailed, path + ": " + std::strerror(-r)};
  const auto regions = s->regions();
  const uint64_t bs = st.block_size;

  if (json) {
    nlohmann::json j;
    j["path"] = st.path.empty() ? path : st.path;
    j["writer"] = st.writer;
    j["uuid"] = st.uuid;
    j["format"] = std::to_string(st.format_major) + "." + std::to_string(st.format_minor);
    j["block_size"] = bs;
    j["size_bytes"] = st.total_blocks * bs;
    j["free_bytes"] = st.free_blocks * bs;
    j["live_data_bytes"] = st.live_data_blocks * bs;
    j["retained_only_bytes"] = st.retained_only_blocks * bs;
    j["metadata_bytes"] = st.meta_blocks * bs;
    j["growable"] = st.growable;
    j["epoch"] = st.epoch;
    j["read_epoch"] = st.read_epoch;
    j["retained_epoch"] = st.retained_epoch;
    j["regions"] = nlohmann::json::array();
    for (const auto& r : regions)
      j["regions"].push_back(
          {{"id", r.id}, {"name", r.name}, {"size", r.size}, {"pages", r.size / bs}});
    j["epochs"] = nlohmann::json::array();
    for (const auto& e : st.chain)
      j["epochs"].push_back({{"epoch", e.epoch}, {"snapshot", e.snapshot},
                             {"pages", e.pages}, {"meta_blocks", e.meta_blocks},
                             {"regions_defined", e.regions}, {"regions_resized", e.resized},
                             {"regions_removed", e.removed}});
    std::printf("%s\n", j.dump(2).c_str());
    return kOk;
  }

  std::printf("store     %s\n", st.path.empty() ? path.c_str() : st.path.c_str());
  std::printf("writer    %s%s\n", st.writer.c_str(), st.growable ? " (file store, grows on demand)" : "");
  std::printf("format    %u.%u, uuid %s, %llu-byte blocks\n", st.format_major, st.format_minor,
              st.uuid.c_str(), (unsigned long long)bs);
  std::printf("size      %s: %s live data, %s kept for the fallback epoch, %s metadata, %s free\n",
              human_bytes(st.total_blocks * bs).c_str(), human_bytes(st.live_data_blocks * bs).c_str(),
              human_bytes(st.retained_only_blocks * bs).c_str(),
              human_bytes(st.meta_blocks * bs).c_str(), human_bytes(st.free_blocks * bs).c_str());
  if (st.epoch == 0) {
    std::printf("epoch     none committed yet\n");
  } else {
    std::printf("epoch     %llu (newest committed)", (unsigned long long)st.epoch);
    if (st.read_epoch != st.epoch)
      std::printf(", restores from %llu: the newest is damaged", (unsigned long long)st.read_epoch);
    if (st.retained_epoch)
      std::printf(", fallback %llu", (unsigned long long)st.retained_epoch);
    std::printf("\n");
  }
  std::printf("\n%-6s %-40s %12s %10s\n", "ID", "REGION", "SIZE", "PAGES");
  for (const auto& r : regions)
    std::printf("%-6u %-40s %12s %10llu\n", r.id, r.name.c_str(), human_bytes(r.size).c_str(),
                (unsigned long long)(r.size / bs));
  if (regions.empty()) std::printf("(no regions)\n");
  if (!st.chain.empty()) {
    std::printf("\n%-10s %-9s %12s %12s %8s  %s\n", "EPOCH", "RECORD", "PAGES", "WRITTEN", "META",
                "REGIONS");
    for (const auto& e : st.chain) {
      // A snapshot lists every region; a delta the regions defined (+), resized (~) and
      // removed (-) in its epoch.
      std::string regs = e.snapshot ? std::to_string(e.regions) : "";
      if (!e.snapshot) {
        if (e.regions) regs += "+" + std::to_string(e.regions) + " ";
        if (e.resized) regs += "~" + std::to_string(e.resized) + " ";
        if (e.removed) regs += "-" + std::to_string(e.removed) + " ";
        regs = regs.empty() ? "-" : regs.substr(0, regs.size() - 1);
      }
      std::printf("%-10llu %-9s %12llu %12s %8llu  %s\n", (unsigned long long)e.epoch,
                  e.snapshot ? "snapshot" : "delta", (unsigned long long)e.pages,
                  e.snapshot ? "-" : human_bytes(e.pages * bs).c_str(),
                  (unsigned long long)e.meta_blocks, regs.c_str());
    }
    std::printf("(a snapshot record maps every page and region of its epoch; a delta lists the "
                "pages that epoch wrote and the regions it defined +, resized ~, removed -)\n");
  }
  return kOk;
}

}  // namespace

void add_inspect(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "inspect", "Show what a store holds: writer, format, epochs and what each wrote, regions, "
                 "free space. Never modifies the store.");
  add_key_file_option(sub);
  sub->add_option("STORE", o->store, "store path (file, /dev/daxX.Y, block device)")->required();
  sub->add_flag("--json", o->json, "print JSON for scripts");
  sub->callback([&run, o] { run = [o] { return inspect(o->store, o->json); }; });
}

}  // namespace ckpt_tool
