// SPDX-License-Identifier: MIT
// libFuzzer target over the process-image decoder (tools/ckpt-tool/image.cpp): the input is
// the bytes of a store's "process" region, which restore, inspect and dump (--replace's check)
// decode from a store that anyone may have written. decode_process must accept or refuse them
// (-ENODATA, -EPROTO, -EBADMSG with a reason), never crash, hang or read outside its input;
// and what it accepts must encode again into an image that decodes to the same bytes (so
// the validation and the encoder agree). Built with clang -fsanitize=fuzzer,address,undefined
// as `image_fuzz` (tests/fuzz/CMakeLists.txt); corpus in tests/fuzz/corpus/image.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "image.hpp"

using namespace ckpt_tool::image;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  Image img;
  std::string why;
  if (decode_process(in, &img, &why) != 0) {
    if (why.empty()) std::abort();  // every refusal says why
  } else {
    // Accepted: encodes back to the same metadata (the current format), which decodes.
    std::vector<uint8_t> again = encode_process(img);
    Image img2;
    std::string why2;
    if (decode_process(again, &img2, &why2) != 0) {
      std::fprintf(stderr, "accepted image does not decode after encoding: %s\n", why2.c_str());
      std::abort();
    }
    if (encode_process(img2) != again) std::abort();
  }
  // The metadata alone, as each minor version of the format reads it.
  if (size > 0) {
    Image m;
    (void)decode_meta(in.subspan(1), &m, &why, uint32_t(data[0] % (kVersionMinor + 1)));
  }
  return 0;
}
