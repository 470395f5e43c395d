/// A parsed XML element: enough structure for S3's responses.
///
/// Parsed here rather than with FoundationXML: that module brings libxml2 and ICU, which every cairn process then
/// loads at start (PostgreSQL starts a `wal-push` for each WAL file). S3 answers are small documents of elements
/// and text; this parser accepts well-formed XML of that kind (with attributes, comments, CDATA, the
/// declaration, and character and predefined entity references) and refuses anything malformed.
struct XMLElement {
    var name: String
    var text: String = ""
    var children: [XMLElement] = []

    /// The first child with this name.
    func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }
    /// Every child with this name.
    func all(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }
    /// The text of the first child with this name.
    func text(_ name: String) -> String? { child(name)?.text }

    /// Parses a document; nil when it is not well-formed XML.
    static func parse(_ bytes: [UInt8]) -> XMLElement? {
        var reader = Reader(bytes: bytes)
        return reader.document()
    }

    /// Escapes text for an XML element body.
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    private struct Reader {
        let bytes: [UInt8]
        var at = 0
        var stack: [XMLElement] = []

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func document() -> XMLElement? {
            var root: XMLElement?
            while at < bytes.count {
                if bytes[at] != UInt8(ascii: "<") {
                    guard let text = self.text() else { return nil }
                    if stack.isEmpty {
                        guard text.allSatisfy({ $0 == " " || $0 == "\n" || $0 == "\r" || $0 == "\t" }) else {
                            return nil
                        }
                    } else {
                        stack[stack.count - 1].text += text
                    }
                } else if skip("<?", until: "?>") || skip("<!--", until: "-->") {
                    continue
                } else if starts("<![CDATA[") {
                    guard !stack.isEmpty, let end = find("]]>", from: at + 9) else { return nil }
                    stack[stack.count - 1].text += String(decoding: bytes[(at + 9)..<end], as: UTF8.self)
                    at = end + 3
                } else if starts("<!") {
                    guard root == nil, stack.isEmpty, skip("<!", until: ">") else { return nil }  // a DOCTYPE
                } else if starts("</") {
                    at += 2
                    guard let name = self.name(), let open = stack.popLast(), open.name == name else { return nil }
                    spaces()
                    guard expect(">") else { return nil }
                    if stack.isEmpty { root = open } else { stack[stack.count - 1].children.append(open) }
                } else {
                    at += 1
                    guard root == nil, let name = self.name() else { return nil }
                    guard let empty = attributes() else { return nil }
                    if empty {
                        if stack.isEmpty {
                            root = XMLElement(name: name)
                        } else {
                            stack[stack.count - 1].children.append(XMLElement(name: name))
                        }
                    } else {
                        stack.append(XMLElement(name: name))
                    }
                }
            }
            return stack.isEmpty ? root : nil
        }

        func starts(_ s: StaticString) -> Bool {
            let n = s.utf8CodeUnitCount
            guard at + n <= bytes.count else { return false }
            return (0..<n).allSatisfy { bytes[at + $0] == s.utf8Start[$0] }
        }

        func find(_ s: StaticString, from: Int) -> Int? {
            let n = s.utf8CodeUnitCount
            var i = from
            while i + n <= bytes.count {
                if (0..<n).allSatisfy({ bytes[i + $0] == s.utf8Start[$0] }) { return i }
                i += 1
            }
            return nil
        }

        /// Skips from `open` past `close` when the input continues with `open` (false when it does not or
        /// `close` never comes).
        mutating func skip(_ open: StaticString, until close: StaticString) -> Bool {
            guard starts(open), let end = find(close, from: at + open.utf8CodeUnitCount) else { return false }
            at = end + close.utf8CodeUnitCount
            return true
        }

        mutating func expect(_ c: Unicode.Scalar) -> Bool {
            guard at < bytes.count, bytes[at] == UInt8(ascii: c) else { return false }
            at += 1
            return true
        }

        mutating func spaces() {
            while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 }
        }

        /// An element or attribute name.
        mutating func name() -> String? {
            let start = at
            while at < bytes.count, !" \t\r\n/>=<\"'".utf8.contains(bytes[at]) { at += 1 }
            return at > start ? String(decoding: bytes[start..<at], as: UTF8.self) : nil
        }

        /// Skips a start tag's attributes up to its end: true for `/>`, false for `>`, nil when malformed.
        mutating func attributes() -> Bool? {
            while true {
                spaces()
                if expect(">") { return false }
                if starts("/>") { at += 2; return true }
                guard name() != nil else { return nil }
                spaces()
                guard expect("=") else { return nil }
                spaces()
                guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") || bytes[at] == UInt8(ascii: "'") else {
                    return nil
                }
                let quote = bytes[at]
                at += 1
                while at < bytes.count, bytes[at] != quote { at += 1 }
                guard expect(Unicode.Scalar(quote)) else { return nil }
            }
        }

        /// Character data up to the next `<`, with references decoded.
        mutating func text() -> String? {
            var out = [UInt8]()
            while at < bytes.count, bytes[at] != UInt8(ascii: "<") {
                guard bytes[at] == UInt8(ascii: "&") else { out.append(bytes[at]); at += 1; continue }
                guard let semi = bytes[at...].prefix(12).firstIndex(of: UInt8(ascii: ";")) else { return nil }
                let ref = String(decoding: bytes[(at + 1)..<semi], as: UTF8.self)
                at = semi + 1
                switch ref {
                case "amp": out.append(UInt8(ascii: "&"))
                case "lt": out.append(UInt8(ascii: "<"))
                case "gt": out.append(UInt8(ascii: ">"))
                case "quot": out.append(UInt8(ascii: "\""))
                case "apos": out.append(UInt8(ascii: "'"))
                default:
                    let hex = ref.hasPrefix("#x") || ref.hasPrefix("#X")
                    guard ref.hasPrefix("#"), let v = UInt32(ref.dropFirst(hex ? 2 : 1), radix: hex ? 16 : 10),
                        let scalar = Unicode.Scalar(v)
                    else { return nil }
                    out += Array(String(Character(scalar)).utf8)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
