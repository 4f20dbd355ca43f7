#include "policy/mime_html.hpp"

#include <cstdint>
#include <cstring>

namespace floodgate::policy {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool is_alnum(char c) { return is_alpha(c) || (c >= '0' && c <= '9'); }

void append_utf8(std::uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Decodes an entity name (without '&' and ';'); false if not one we know.
bool decode_entity(std::string_view name, bool terminated, std::string& out) {
  struct Named {
    std::string_view name;
    char value;
    bool legacy;  // browsers accept it without ';' (legacy HTML)
  };
  static constexpr Named k_named[] = {
      {"amp", '&', true},   {"lt", '<', true},    {"gt", '>', true},
      {"quot", '"', true},  {"nbsp", ' ', true},  {"apos", '\'', false},
  };
  for (const Named& entity : k_named) {
    if (name == entity.name && (terminated || entity.legacy)) {
      out.push_back(entity.value);
      return true;
    }
  }
  if (!terminated) return false;
  if (name.size() < 2 || name[0] != '#') return false;
  std::uint32_t cp = 0;
  const bool hex = name[1] == 'x' || name[1] == 'X';
  const std::string_view digits = name.substr(hex ? 2 : 1);
  if (digits.empty()) return false;
  for (char c : digits) {
    int v = -1;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (hex && lower(c) >= 'a' && lower(c) <= 'f') v = lower(c) - 'a' + 10;
    if (v < 0) return false;
    cp = cp * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
    if (cp > 0x10ffff) return false;  // also stops overflow: name is short
  }
  if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  if (cp == 0xa0) cp = ' ';  // &#160; is &nbsp;
  append_utf8(cp, out);
  return true;
}

}  // namespace

// The states that make up most of a part -- text, the inside of a tag once
// its name is read, comments, script and style -- are skipped or copied in
// runs up to the next byte that can change the state; every other byte goes
// through on_byte(). The result is the same as feeding every byte to
// on_byte(), which is what the pinned fingerprints hold this to.
void HtmlTextExtractor::extract(std::string_view html, std::string& out) {
  const char* p = html.data();
  const char* const end = p + html.size();
  while (p < end) {
    switch (m_state) {
      case State::Text: {
        const char* run = p;
        while (p < end && *p != '<' && *p != '&') ++p;
        out.append(run, static_cast<std::size_t>(p - run));
        if (p == end) return;
        break;
      }
      case State::Tag:
        if (m_name_done) {
          // Attributes: nothing but '>' matters.
          while (p < end && *p != '>') ++p;
          if (p == end) return;
        }
        break;
      case State::Comment: {
        // Comments and attributes are short: a plain loop beats memchr's call.
        const char* gt = p;
        while (gt < end && *gt != '>') ++gt;
        if (gt == end) gt = nullptr;
        const char* const stop = gt == nullptr ? end : gt;
        // The run of '-' just before `stop`, continuing the carried count
        // when it reaches back to the start of this piece.
        const char* dash = stop;
        while (dash > p && dash[-1] == '-') --dash;
        const int dashes = static_cast<int>(stop - dash) + (dash == p ? m_dashes : 0);
        if (gt == nullptr) {
          m_dashes = dashes;
          return;
        }
        m_dashes = dashes;
        p = gt;
        break;  // on_byte('>') closes the comment when two dashes preceded it
      }
      case State::RawText:
        if (m_raw_matched == 0) {
          // Only a '<' can start the closing tag.
          p = static_cast<const char*>(std::memchr(p, '<', static_cast<std::size_t>(end - p)));
          if (p == nullptr) return;
        }
        break;
      case State::LessThan:
      case State::Entity:
        break;
    }
    on_byte(*p++, out);
  }
}

void HtmlTextExtractor::on_byte(char c, std::string& out) {
  switch (m_state) {
    case State::Text:
      if (c == '<') {
        m_state = State::LessThan;
      } else if (c == '&') {
        m_state = State::Entity;
        m_name_len = 0;
      } else {
        out.push_back(c);
      }
      return;
    case State::LessThan:
      // "a < b" is text; only "<x", "</", "<!" and "<?" open a tag.
      if (is_alpha(c) || c == '/' || c == '!' || c == '?') {
        m_state = State::Tag;
        m_name_len = 0;
        m_name_done = false;
        on_byte(c, out);
      } else {
        out.push_back('<');
        m_state = State::Text;
        on_byte(c, out);
      }
      return;
    case State::Tag:
      if (c == '>') {
        end_tag(out);
        return;
      }
      if (!m_name_done) {
        if (is_alnum(c) || c == '/' || c == '!' || c == '-' || c == '?') {
          if (m_name_len < k_max_name) m_name[m_name_len++] = lower(c);
          if (m_name_len == 3 && std::string_view(m_name.data(), 3) == "!--") {
            m_state = State::Comment;
            m_dashes = 0;
          }
        } else {
          m_name_done = true;
        }
      }
      return;
    case State::Comment:
      if (c == '>' && m_dashes >= 2) {
        m_state = State::Text;
        out.push_back(' ');
      }
      m_dashes = c == '-' ? m_dashes + 1 : 0;
      return;
    case State::Entity:
      if (c == ';') {
        end_entity(true, out);
      } else if ((is_alnum(c) || (c == '#' && m_name_len == 0)) && m_name_len < k_max_name) {
        m_name[m_name_len++] = c;
      } else {
        end_entity(false, out);
        on_byte(c, out);
      }
      return;
    case State::RawText:
      if (lower(c) == m_raw_end[m_raw_matched]) {
        if (++m_raw_matched == m_raw_end.size()) {
          // Now inside the closing tag; its name does not reopen raw text.
          m_state = State::Tag;
          m_name_len = 0;
          m_name_done = true;
        }
      } else {
        m_raw_matched = c == '<' ? 1 : 0;
      }
      return;
  }
}

void HtmlTextExtractor::end_tag(std::string& out) {
  const std::string_view name(m_name.data(), m_name_len);
  out.push_back(' ');
  m_state = State::Text;
  if (name == "script") {
    m_state = State::RawText;
    m_raw_end = "</script";
    m_raw_matched = 0;
  } else if (name == "style") {
    m_state = State::RawText;
    m_raw_end = "</style";
    m_raw_matched = 0;
  }
}

void HtmlTextExtractor::end_entity(bool terminated, std::string& out) {
  const std::string_view name(m_name.data(), m_name_len);
  m_state = State::Text;
  if (decode_entity(name, terminated, out)) return;
  out.push_back('&');
  out.append(name);
  if (terminated) out.push_back(';');
}

void HtmlTextExtractor::finish(std::string& out) {
  switch (m_state) {
    case State::LessThan:
      out.push_back('<');
      break;
    case State::Entity:
      end_entity(false, out);
      break;
    default:
      break;
  }
  m_state = State::Text;
}

}  // namespace floodgate::policy
