// A main() for the libFuzzer targets of this folder without libFuzzer: runs
// LLVMFuzzerTestOneInput on every seed file given, then on a fixed number of
// deterministic mutations of each (bit flips, interesting bytes, truncations,
// duplicated and deleted slices, MIME tokens, splices of two seeds, long
// repeats). It finds no new coverage; it is a cheap crash check that builds
// with g++ and runs under ctest (and under the ASan/UBSan build), so every
// CI run exercises the fuzz targets. The clang libFuzzer build links the
// targets with libFuzzer's own main and never this file.
//
// Usage: fuzz_smoke_<target> [--mutations N] [--seed S] [--max-seconds T]
//                            [--max-len BYTES] FILE_OR_DIR...
// Directories are read one level deep, in name order. The same arguments
// give the same inputs in the same order. --max-seconds stops mutating (not
// the seeds) when the budget is spent, so a slow sanitizer build still ends.
//
// On a crash, the input being run is written to $FUZZ_SMOKE_CRASH_FILE
// (default ./fuzz-smoke-crash.bin) and described on stderr; reproduce with
// the same binary given that file.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);
extern "C" __attribute__((weak)) void __sanitizer_set_death_callback(void (*callback)());

namespace {

constexpr std::string_view k_tokens[] = {
    "\r\n--b\r\n",
    "\r\n--b--\r\n",
    "\r\n\r\n",
    "=\r\n",
    "=3D",
    "=\n",
    "==",
    "Content-Type: multipart/mixed; boundary=b\r\n\r\n",
    "Content-Type: text/html; charset=shift_jis\r\n\r\n",
    "Content-Transfer-Encoding: base64\r\n\r\n",
    "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
    "<!--",
    "-->",
    "<script>",
    "<style>",
    "&#x",
    "&amp",
    "=?utf-8?b?",
    "http://",
    "\xC3",
    "\xE2\x82",
    std::string_view("\0", 1),
};
constexpr unsigned char k_interesting_bytes[] = {0,   0xFF, 0x80, '\n', '\r', '=',  '-',
                                                 '<', '>',  ';',  '"',  ' ',  '\t', '&'};

// The input being run, for the crash handlers.
const std::string* g_current_input = nullptr;
char g_current_description[256] = "";
const char* g_crash_file = "fuzz-smoke-crash.bin";

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t written = write(fd, data, size);
    if (written <= 0) return;
    data += written;
    size -= static_cast<std::size_t>(written);
  }
}

// Async-signal-safe: write(2) only.
void save_current_input() {
  static bool saved = false;
  if (saved || g_current_input == nullptr) return;
  saved = true;
  const int fd = open(g_crash_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    write_all(fd, g_current_input->data(), g_current_input->size());
    close(fd);
  }
  const char prefix[] = "\nfuzz_smoke: crashed on ";
  write_all(2, prefix, sizeof prefix - 1);
  write_all(2, g_current_description, strlen(g_current_description));
  const char middle[] = "; input saved to ";
  write_all(2, middle, sizeof middle - 1);
  write_all(2, g_crash_file, strlen(g_crash_file));
  write_all(2, "\n", 1);
}

void on_fatal_signal(int signal_number) {
  save_current_input();
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

// splitmix64: small, good enough, and the same everywhere.
class Random {
 public:
  explicit Random(std::uint64_t seed) : m_state(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, bound) for bound > 0.
  std::size_t below(std::size_t bound) { return static_cast<std::size_t>(next() % bound); }

 private:
  std::uint64_t m_state;
};

std::uint64_t hash_bytes(std::string_view bytes) {
  std::uint64_t hash = 0xCBF29CE484222325ull;  // FNV-1a
  for (const char c : bytes) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001B3ull;
  return hash;
}

void mutate_once(std::string& input, const std::vector<std::string>& seeds, Random& random,
                 std::size_t max_len) {
  const std::size_t size = input.size();
  switch (random.below(8)) {
    case 0:  // flip a bit
      if (size > 0) input[random.below(size)] ^= static_cast<char>(1u << random.below(8));
      break;
    case 1:  // an interesting byte
      if (size > 0) {
        input[random.below(size)] =
            static_cast<char>(k_interesting_bytes[random.below(std::size(k_interesting_bytes))]);
      }
      break;
    case 2:  // truncate
      input.resize(random.below(size + 1));
      break;
    case 3:  // duplicate a slice
      if (size > 0) {
        const std::size_t from = random.below(size);
        const std::size_t length = 1 + random.below(std::min<std::size_t>(size - from, 4096));
        input.insert(random.below(size + 1), input.substr(from, length));
      }
      break;
    case 4:  // delete a slice
      if (size > 0) {
        const std::size_t from = random.below(size);
        input.erase(from, 1 + random.below(std::min<std::size_t>(size - from, 4096)));
      }
      break;
    case 5:  // a MIME, HTML or charset token
      input.insert(random.below(size + 1), k_tokens[random.below(std::size(k_tokens))]);
      break;
    case 6: {  // splice: our head, another seed's tail
      const std::string& other = seeds[random.below(seeds.size())];
      input.resize(random.below(size + 1));
      input.append(other, random.below(other.size() + 1));
      break;
    }
    default:  // repeat a short slice many times: long lines, deep nesting
      if (size > 0) {
        const std::size_t from = random.below(size);
        const std::string slice =
            input.substr(from, 1 + random.below(std::min<std::size_t>(size - from, 64)));
        std::string repeated;
        const std::size_t times = 1 + random.below(2000);
        for (std::size_t i = 0; i < times && repeated.size() < max_len; ++i) repeated += slice;
        input.insert(random.below(size + 1), repeated);
      }
      break;
  }
  if (input.size() > max_len) input.resize(max_len);
}

void run_one(const std::string& input) {
  g_current_input = &input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
  g_current_input = nullptr;
}

std::vector<std::filesystem::path> seed_files(const std::vector<std::string>& paths) {
  std::vector<std::filesystem::path> files;
  for (const std::string& path : paths) {
    if (std::filesystem::is_directory(path)) {
      std::vector<std::filesystem::path> in_dir;
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) in_dir.push_back(entry.path());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.emplace_back(path);
    }
  }
  return files;
}

[[noreturn]] void usage(const char* why) {
  std::cerr << "fuzz_smoke: " << why
            << "\nusage: fuzz_smoke [--mutations N] [--seed S] [--max-seconds T] [--max-len BYTES]"
               " FILE_OR_DIR...\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t mutations = 100;
  std::uint64_t base_seed = 1;
  double max_seconds = 1e9;
  std::size_t max_len = 1 << 20;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value");
      return argv[++i];
    };
    try {
      if (arg == "--mutations") {
        mutations = std::stoul(value());
      } else if (arg == "--seed") {
        base_seed = std::stoull(value());
      } else if (arg == "--max-seconds") {
        max_seconds = std::stod(value());
      } else if (arg == "--max-len") {
        max_len = std::stoul(value());
      } else if (arg.starts_with("--")) {
        usage("unknown option");
      } else {
        paths.emplace_back(arg);
      }
    } catch (const std::exception&) {
      usage("bad number");
    }
  }
  if (paths.empty()) usage("no seed given");

  if (const char* crash_file = std::getenv("FUZZ_SMOKE_CRASH_FILE")) g_crash_file = crash_file;
  for (const int signal_number : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
    ::signal(signal_number, on_fatal_signal);
  }
  if (__sanitizer_set_death_callback != nullptr) __sanitizer_set_death_callback(save_current_input);
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  std::vector<std::string> seeds;
  std::vector<std::string> names;
  for (const auto& file : seed_files(paths)) {
    std::ifstream in(file, std::ios::binary);
    if (!in) usage(("cannot read " + file.string()).c_str());
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    names.push_back(file.filename().string());
  }
  if (seeds.empty()) usage("no seed files found");

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::size_t runs = 0;
  for (std::size_t s = 0; s < seeds.size(); ++s) {
    std::snprintf(g_current_description, sizeof g_current_description, "seed %s", names[s].c_str());
    run_one(seeds[s]);
    ++runs;
  }
  bool out_of_time = false;
  for (std::size_t s = 0; s < seeds.size() && !out_of_time; ++s) {
    for (std::size_t m = 0; m < mutations; ++m) {
      if (elapsed() > max_seconds) {
        out_of_time = true;
        break;
      }
      Random random(base_seed ^ hash_bytes(names[s]) ^ (m * 0x100000001B3ull));
      std::string input = seeds[s];
      const std::size_t stacked = 1 + random.below(4);
      for (std::size_t k = 0; k < stacked; ++k) mutate_once(input, seeds, random, max_len);
      std::snprintf(g_current_description, sizeof g_current_description,
                    "seed %s, mutation %zu (--seed %llu)", names[s].c_str(), m,
                    static_cast<unsigned long long>(base_seed));
      run_one(input);
      ++runs;
    }
  }
  std::cout << "fuzz_smoke: " << runs << " inputs (" << seeds.size() << " seeds, up to " << mutations
            << " mutations each) in " << elapsed() << " s, no crash"
            << (out_of_time ? "; stopped mutating at --max-seconds" : "") << "\n";
  return 0;
}
