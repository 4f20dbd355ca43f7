// The content fingerprinter: a streaming MIME walker that feeds the decoded
// text of text/plain and text/html parts through TextTokeniser into a
// MinHashSketch (near-duplicate band keys) and an XXH3 of the token stream
// (the exact digest).
//
// The walker is line-oriented because MIME boundaries are whole lines. Lines
// are gathered in one buffer of k_max_line bytes; a longer line is handed on
// in pieces, and a piece that does not start a line is never taken for a
// boundary (a boundary line is at most ~75 bytes). Piece limits fall at fixed
// offsets within a line, so the result does not depend on how the MTA split
// the body into chunks.
#include "policy/content_fingerprint.hpp"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "policy/charset.hpp"
#include "policy/mime_decoders.hpp"
#include "policy/mime_header.hpp"
#include "policy/mime_html.hpp"
#include "policy/minhash.hpp"
#include "policy/text_tokens.hpp"

namespace floodgate::policy {

namespace {

constexpr std::size_t k_max_line = 8 * 1024;
// An attachment is summarised by its type, size class and a hash of its
// first bytes (decoded): enough to tell one image spam from another, at a
// bounded cost whatever its size.
constexpr std::size_t k_max_attachment_hashed = 1024 * 1024;

// The header fields of one entity (the message or a MIME part) that decide
// how its body is read. First occurrence wins, as in MessageFacts.
struct EntityHeaders {
  enum Field { ContentType, TransferEncoding, Disposition, Other };

  std::string content_type;
  std::string transfer_encoding;
  std::string disposition;
  bool seen[3] = {false, false, false};

  static Field field_of(std::string_view name) {
    name = trim_header_space(name);
    if (equals_ignoring_case(name, "Content-Type")) return ContentType;
    if (equals_ignoring_case(name, "Content-Transfer-Encoding")) return TransferEncoding;
    if (equals_ignoring_case(name, "Content-Disposition")) return Disposition;
    return Other;
  }
  std::string* value_of(Field field) {
    switch (field) {
      case ContentType: return &content_type;
      case TransferEncoding: return &transfer_encoding;
      case Disposition: return &disposition;
      case Other: break;
    }
    return nullptr;
  }
};

// At most `cap` bytes of a header value are kept (ContentSettings::max_header_bytes).
void append_capped(std::string& to, std::string_view text, std::size_t cap) {
  if (to.size() >= cap) return;
  to.append(text.substr(0, cap - to.size()));
}

void free_state(XXH3_state_s* state) { XXH3_freeState(state); }

XXH3_state_s* new_state() {
  XXH3_state_t* state = XXH3_createState();
  if (state == nullptr) throw std::bad_alloc();
  XXH3_64bits_reset(state);
  return state;
}

// Where the tokens go: the MinHash sketch, and the exact digest of the
// token stream (tokens joined by one space). The stream is gathered in a
// fixed buffer and hashed a block at a time: XXH3's streaming digest does
// not depend on how its input is split, and two update calls per token
// were a visible share of the fingerprint's cost.
class TokenDigests final : public TokenSink {
 public:
  TokenDigests() : m_state(new_state(), &free_state) {}

  void on_token(std::string_view token) override {
    if (m_sketch.tokens() > 0) append(" ");
    append(token);
    m_sketch.add_token(token);
  }

  const MinHashSketch& sketch() const { return m_sketch; }
  // Ends the stream; call once, after the last token.
  std::uint64_t digest() {
    flush();
    return XXH3_64bits_digest(m_state.get());
  }

 private:
  void append(std::string_view text) {
    if (text.size() > m_pending.size() - m_pending_size) {
      flush();
      if (text.size() > m_pending.size()) {
        XXH3_64bits_update(m_state.get(), text.data(), text.size());
        return;
      }
    }
    std::memcpy(m_pending.data() + m_pending_size, text.data(), text.size());
    m_pending_size += text.size();
  }

  void flush() {
    XXH3_64bits_update(m_state.get(), m_pending.data(), m_pending_size);
    m_pending_size = 0;
  }

  std::unique_ptr<XXH3_state_s, void (*)(XXH3_state_s*)> m_state;
  MinHashSketch m_sketch;
  std::array<char, 1024> m_pending;
  std::size_t m_pending_size = 0;
};

class MinHashFingerprinter final : public ContentFingerprinter {
 public:
  explicit MinHashFingerprinter(const ContentSettings& settings)
      : m_max_nesting_depth(settings.max_nesting_depth),
        m_max_parts(settings.max_parts),
        m_max_header_bytes(settings.max_header_bytes),
        m_text(settings.max_text_bytes, m_tokens) {}

  void add_header(std::string_view name, std::string_view value) override {
    if (m_body_started) return;  // too late to change how the body is read
    const auto field = EntityHeaders::field_of(name);
    if (field == EntityHeaders::Other || m_message_headers.seen[field]) return;
    m_message_headers.seen[field] = true;
    append_capped(*m_message_headers.value_of(field), value, m_max_header_bytes);
  }

  void add_body_chunk(std::string_view chunk) override {
    start_body();
    while (!chunk.empty() && !stopped()) {
      const std::size_t newline = chunk.find('\n');
      const std::size_t take = newline == std::string_view::npos ? chunk.size() : newline;
      if (m_line.empty()) {
        // Lines that lie whole in the chunk are read where they are; only
        // a line cut by the end of the chunk is copied, to be completed by
        // the next one. Pieces fall at the same offsets either way.
        if (take > k_max_line) {
          on_line(chunk.substr(0, k_max_line), false);
          chunk.remove_prefix(k_max_line);
        } else if (newline == std::string_view::npos) {
          m_line.assign(chunk);
          chunk = {};
        } else {
          on_line(chunk.substr(0, take), true);
          chunk.remove_prefix(take + 1);
        }
        continue;
      }
      const std::size_t room = k_max_line - m_line.size();
      if (take > room) {
        m_line.append(chunk.substr(0, room));
        chunk.remove_prefix(room);
        on_buffered_line(false);
        continue;
      }
      m_line.append(chunk.substr(0, take));
      chunk.remove_prefix(take);
      if (newline != std::string_view::npos) {
        chunk.remove_prefix(1);
        on_buffered_line(true);
      }
    }
  }

  ContentFingerprint finish() override {
    if (!m_finished) {
      start_body();
      // An unterminated last line still counts: "--b--" without CRLF closes.
      if (!m_line.empty() && !stopped()) on_buffered_line(true);
      end_text_part();
      end_attachment();
      m_text.finish();
      fill_result();
      m_finished = true;
    }
    return m_result;
  }

 private:
  void fill_result() {
    m_result.present = m_text.saw_text() || m_attachments > 0;
    if (!m_result.present) {
      // Text hidden where the caps stopped reading is worth telling apart
      // from a message that simply has none.
      m_result.unfingerprintable = m_parts > m_max_parts      ? "too many parts"
                                   : m_too_deep                ? "nesting too deep"
                                                               : "no text";
      return;
    }
    m_result.digest = m_tokens.digest();
    if (m_tokens.sketch().has_signature()) {
      m_result.method = "minhash";
      m_result.bands = m_tokens.sketch().band_keys();
    } else {
      m_result.method = "exact";
    }
  }

  // What the lines of the current entity are.
  enum class Section { Headers, Text, Attachment, Skip, Done };

  // Once the cap is reached and text was seen, nothing further can change
  // the result: the rest of the body is not even scanned.
  bool stopped() const {
    return m_section == Section::Done || (m_text.full() && m_text.saw_text());
  }

  void start_body() {
    if (m_body_started) return;
    m_body_started = true;
    begin_entity_body(m_message_headers);
  }

  void on_buffered_line(bool ends_line) {
    on_line(m_line, ends_line);
    m_line.clear();
  }

  // A line (ends_line) or a piece of a long one.
  void on_line(std::string_view line, bool ends_line) {
    const bool at_line_start = !m_in_long_line;
    m_in_long_line = !ends_line;
    if (ends_line && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!(at_line_start && ends_line && on_boundary(line))) {
      switch (m_section) {
        case Section::Headers:
          on_header_line(line, at_line_start);
          break;
        // The line and its line break go down the pipeline as one piece,
        // not two: every stage streams and gives the same output however
        // its input is split, so this only saves a pass per line.
        case Section::Text:
          add_text(line, ends_line);
          break;
        case Section::Attachment:
          add_attachment_bytes(line, ends_line);
          break;
        case Section::Skip:
        case Section::Done:
          break;
      }
    }
  }

  // Handles `line` if it is a delimiter of an open multipart; an outer
  // delimiter also closes the inner multiparts that never closed.
  bool on_boundary(std::string_view line) {
    if (m_boundaries.empty() || !line.starts_with("--")) return false;
    // RFC 2046 5.1.1: transport padding may follow the delimiter.
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    for (std::size_t level = m_boundaries.size(); level-- > 0;) {
      const std::string& delimiter = m_boundaries[level];
      if (!line.starts_with(delimiter)) continue;
      const std::string_view rest = line.substr(delimiter.size());
      if (!rest.empty() && rest != "--") continue;
      end_text_part();
      end_attachment();
      m_boundaries.resize(level + 1);
      if (rest == "--") {
        // The epilogue up to the enclosing multipart's next delimiter is not
        // part of any entity.
        m_boundaries.pop_back();
        m_section = Section::Skip;
      } else if (++m_parts > m_max_parts) {
        m_section = Section::Done;
      } else {
        m_section = Section::Headers;
        m_part_headers = EntityHeaders{};
        m_current_field = EntityHeaders::Other;
      }
      return true;
    }
    return false;
  }

  void on_header_line(std::string_view line, bool at_line_start) {
    if (!at_line_start || (!line.empty() && (line[0] == ' ' || line[0] == '\t'))) {
      // The rest of a long line, or a folded continuation.
      if (std::string* value = m_part_headers.value_of(m_current_field)) {
        append_capped(*value, " ", m_max_header_bytes);
        append_capped(*value, line, m_max_header_bytes);
      }
      return;
    }
    if (line.empty()) {
      begin_entity_body(m_part_headers);
      return;
    }
    m_current_field = EntityHeaders::Other;
    const std::size_t colon = line.find(':');
    // A line without a colon is junk in the header section; skip it.
    if (colon == std::string_view::npos) return;
    const auto field = EntityHeaders::field_of(line.substr(0, colon));
    if (field == EntityHeaders::Other || m_part_headers.seen[field]) return;
    m_part_headers.seen[field] = true;
    m_current_field = field;
    append_capped(*m_part_headers.value_of(field), line.substr(colon + 1), m_max_header_bytes);
  }

  // Decides, from its headers, how the body of an entity is read.
  void begin_entity_body(const EntityHeaders& headers) {
    const ContentType type = parse_content_type(headers.content_type);
    m_section = Section::Skip;
    if (type.is_multipart() && !type.boundary.empty()) {
      if (m_boundaries.size() < m_max_nesting_depth) {
        m_boundaries.push_back("--" + type.boundary);
      } else {
        m_too_deep = true;
      }
      return;  // the preamble is skipped until the first delimiter
    }
    m_decoder = TransferDecoder(parse_transfer_encoding(headers.transfer_encoding));
    // A multipart without a boundary cannot be split into parts; its text
    // is all that can be read, so it is read as text/plain.
    if ((!type.is_text() && !type.is_multipart()) || is_attachment_disposition(headers.disposition)) {
      begin_attachment(type.media_type);
      return;
    }
    m_section = Section::Text;
    m_charset = std::make_unique<CharsetDecoder>(type.charset);
    m_is_html = type.is_html();
    m_html = HtmlTextExtractor{};
  }

  void add_text(std::string_view encoded, bool with_line_break) {
    m_decoded.clear();
    m_decoder.decode(encoded, m_decoded);
    if (with_line_break) m_decoder.decode("\n", m_decoded);
    add_decoded();
  }

  // The part's charset to UTF-8, then (HTML) to its visible text.
  void add_decoded() {
    m_utf8.clear();
    m_charset->decode(m_decoded, m_utf8);
    add_utf8();
  }

  void add_utf8() {
    if (m_is_html) {
      m_html_text.clear();
      m_html.extract(m_utf8, m_html_text);
      m_text.add(m_html_text);
    } else {
      m_text.add(m_utf8);
    }
  }

  void begin_attachment(std::string_view media_type) {
    m_section = Section::Attachment;
    m_attachment_type = std::string(media_type.substr(0, 64));
    m_attachment_bytes = 0;
    XXH3_64bits_reset(m_attachment_hash.get());
  }

  void add_attachment_bytes(std::string_view encoded, bool with_line_break) {
    m_decoded.clear();
    m_decoder.decode(encoded, m_decoded);
    if (with_line_break) m_decoder.decode("\n", m_decoded);
    hash_attachment(m_decoded);
  }

  void hash_attachment(std::string_view decoded) {
    if (m_attachment_bytes < k_max_attachment_hashed) {
      const std::size_t take = std::min(decoded.size(), k_max_attachment_hashed - m_attachment_bytes);
      XXH3_64bits_update(m_attachment_hash.get(), decoded.data(), take);
    }
    m_attachment_bytes += decoded.size();
  }

  // One token per attachment: "<attachment:type:size class:hash>", the size
  // class being the bit length of its decoded size (so 3 KB and 3.5 KB are
  // one class). Its bytes never reach the text.
  void end_attachment() {
    if (m_section != Section::Attachment) return;
    m_decoded.clear();
    m_decoder.finish(m_decoded);
    hash_attachment(m_decoded);
    m_section = Section::Skip;
    if (m_attachment_bytes == 0) return;
    static constexpr char k_hex[] = "0123456789abcdef";
    std::string token = "<attachment:" + m_attachment_type + ":" +
                        std::to_string(std::bit_width(m_attachment_bytes)) + ":";
    const std::uint64_t hash = XXH3_64bits_digest(m_attachment_hash.get());
    for (int shift = 60; shift >= 0; shift -= 4) token += k_hex[(hash >> shift) & 0xf];
    token += ">";
    m_text.separate();
    m_tokens.on_token(token);
    ++m_attachments;
  }

  void end_text_part() {
    if (m_section != Section::Text) return;
    m_decoded.clear();
    m_decoder.finish(m_decoded);
    add_decoded();
    m_utf8.clear();
    m_charset->finish(m_utf8);
    add_utf8();
    if (m_is_html) {
      m_html_text.clear();
      m_html.finish(m_html_text);
      m_text.add(m_html_text);
    }
    m_text.separate();
    m_section = Section::Skip;
  }

  std::size_t m_max_nesting_depth;  // ContentSettings' caps
  std::size_t m_max_parts;
  std::size_t m_max_header_bytes;
  TokenDigests m_tokens;
  TextTokeniser m_text;  // feeds m_tokens, so declared after it
  ContentFingerprint m_result;
  bool m_finished = false;
  bool m_body_started = false;
  EntityHeaders m_message_headers;

  // Walker state.
  Section m_section = Section::Skip;
  // A line cut by the end of a chunk, at most k_max_line bytes. Not
  // reserved up front: most bodies arrive in one chunk, and a large
  // allocation per message made glibc consolidate its fast bins each time.
  std::string m_line;
  bool m_in_long_line = false;
  std::vector<std::string> m_boundaries;  // "--boundary", outermost first
  std::size_t m_parts = 0;
  bool m_too_deep = false;
  EntityHeaders m_part_headers;
  EntityHeaders::Field m_current_field = EntityHeaders::Other;

  // Current text part.
  TransferDecoder m_decoder;
  bool m_is_html = false;
  HtmlTextExtractor m_html;
  std::unique_ptr<CharsetDecoder> m_charset;
  std::string m_decoded;    // one line's decoded bytes, reused
  std::string m_utf8;       // the same in UTF-8, reused
  // Current attachment.
  std::string m_attachment_type;
  std::uint64_t m_attachment_bytes = 0;
  std::unique_ptr<XXH3_state_s, void (*)(XXH3_state_s*)> m_attachment_hash{new_state(), &free_state};
  std::size_t m_attachments = 0;
  std::string m_html_text;  // one line's text from HTML, reused
};

}  // namespace

std::unique_ptr<ContentFingerprinter> make_content_fingerprinter(const ContentSettings& settings) {
  return std::make_unique<MinHashFingerprinter>(settings);
}

}  // namespace floodgate::policy
