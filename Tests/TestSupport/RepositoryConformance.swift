import CairnBase
import CairnStorage
import Foundation
import Synchronization
import Testing

/// The repository contract (see `Repository`), checked the same way against every driver: the unit tests run it
/// on the in-memory and local-folder drivers, the integration tests on the S3 servers.
public enum Conformance {
    public static func bytes(_ n: Int, seed: UInt64 = 1) -> [UInt8] {
        var x = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<n).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    public static func code(_ body: () throws -> Void) -> ErrorCode? {
        do { try body(); return nil } catch let e as CairnError { return e.code } catch { return .internal }
    }

    public static func run(_ repo: any Repository, largeObject: Int) throws {
        // put / get / head / list
        let a = bytes(1000)
        let info = try repo.put("dir/a.bin", a, options: .overwrite)
        #expect(info.size == 1000)
        #expect(try repo.getBytes("dir/a.bin") == a)
        #expect(try repo.head("dir/a.bin")?.size == 1000)
        #expect(try repo.head("dir/missing") == nil)
        #expect(code { _ = try repo.getBytes("dir/missing") } == .repoObjectMissing)

        // empty object
        try repo.put("dir/empty", [], options: .overwrite)
        #expect(try repo.getBytes("dir/empty") == [])
        #expect(try repo.head("dir/empty")?.size == 0)

        // create-only never replaces
        #expect(code { try repo.put("dir/a.bin", [1, 2, 3], options: .createOnly) } == .repoObjectExists)
        #expect(try repo.getBytes("dir/a.bin") == a)
        try repo.put("dir/a.bin", [9, 9], options: .overwrite)
        #expect(try repo.getBytes("dir/a.bin") == [9, 9])

        // ranges
        try repo.put("r", a, options: .overwrite)
        var part = [UInt8]()
        try repo.get("r", range: ByteRange(start: 10, end: 20)) { part.append(contentsOf: $0) }
        #expect(part == Array(a[10..<20]))
        part = []
        try repo.get("r", range: ByteRange(start: 990)) { part.append(contentsOf: $0) }
        #expect(part == Array(a[990...]))

        // list: sorted, prefix is a plain string prefix, nested keys included
        for k in ["l/ab", "l/abc", "l/abd/x", "l/b", "l2/z"] { try repo.put(k, [1], options: .overwrite) }
        #expect(try repo.list(prefix: "l/ab").map(\.key) == ["l/ab", "l/abc", "l/abd/x"])
        #expect(try repo.list(prefix: "l/").map(\.key) == ["l/ab", "l/abc", "l/abd/x", "l/b"])
        #expect(try repo.list(prefix: "l").map(\.key) == ["l/ab", "l/abc", "l/abd/x", "l/b", "l2/z"])
        #expect(try repo.list(prefix: "nothing/").isEmpty)
        #expect(try repo.list(prefix: "").contains { $0.key == "dir/a.bin" })

        // delete, including keys that do not exist
        try repo.delete(["l/ab", "l/abd/x", "l/never"])
        #expect(try repo.list(prefix: "l/").map(\.key) == ["l/abc", "l/b"])

        // odd key names
        let odd = "odd/a b+c~d=e&f?g,h;é€.bin"
        try repo.put(odd, [7], options: .overwrite)
        #expect(try repo.getBytes(odd) == [7])
        #expect(try repo.list(prefix: "odd/").map(\.key) == [odd])

        // invalid keys are refused
        for bad in ["", "/a", "a/", "a//b", "../x", "a/./b", "a/../b", "tab\tkey"] {
            #expect(code { try repo.put(bad, [1], options: .overwrite) } == .repoProtocol, "key \(bad)")
        }

        // streaming writer: large object across part boundaries
        let big = bytes(largeObject, seed: 7)
        let w = try repo.makeWriter("big/object", options: .createOnly)
        #expect(try repo.head("big/object") == nil)
        var off = 0
        var step = 1
        while off < big.count {
            let n = min(step, big.count - off)
            try big[off..<(off + n)].withUnsafeBytes { try w.write($0) }
            off += n
            step = step * 3 + 1  // uneven chunk sizes
        }
        #expect(try repo.head("big/object") == nil, "nothing is visible before finish")
        let finished = try w.finish()
        #expect(finished.size == Int64(big.count))
        #expect(try repo.getBytes("big/object") == big)
        #expect(try repo.head("big/object")?.size == Int64(big.count))

        // create-only writer onto an existing key fails and leaves the object alone
        // (a driver may notice while writing or at finish, but must notice)
        let w2 = try repo.makeWriter("big/object", options: .createOnly)
        #expect(
            code {
                try bytes(largeObject, seed: 8).withUnsafeBytes { try w2.write($0) }
                _ = try w2.finish()
            } == .repoObjectExists)
        w2.abort()
        #expect(try repo.getBytes("big/object") == big)

        // an aborted writer leaves nothing
        let w3 = try repo.makeWriter("big/aborted", options: .overwrite)
        try big.withUnsafeBytes { try w3.write($0) }
        w3.abort()
        #expect(try repo.head("big/aborted") == nil)
        #expect(try !repo.list(prefix: "big/").contains { $0.key != "big/object" })

        // writers that send their own parts from one buffer, or from one upload thread of their own (backup
        // lanes), create-only like the others
        for threads in [0, 1] {
            let key = "big/lane\(threads)"
            let w4 = try repo.makeWriter(key, options: PutOptions(createOnly: true, uploadThreads: threads))
            try big.withUnsafeBytes { b in
                for start in stride(from: 0, to: b.count, by: 700_001) {
                    try w4.write(UnsafeRawBufferPointer(rebasing: b[start..<min(b.count, start + 700_001)]))
                }
            }
            #expect(try w4.finish().size == Int64(big.count))
            #expect(try repo.getBytes(key) == big)
            let w5 = try repo.makeWriter(key, options: PutOptions(createOnly: true, uploadThreads: threads))
            #expect(
                code {
                    try big.withUnsafeBytes { try w5.write($0) }; _ = try w5.finish()
                } == .repoObjectExists)
            w5.abort()
            #expect(try repo.getBytes(key) == big)
            try repo.delete([key])
        }

        // concurrent writers and readers
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            do {
                let data = bytes(5000 + i, seed: UInt64(i))
                try repo.put("conc/\(i)", data, options: .createOnly)
                if try repo.getBytes("conc/\(i)") != data { errors.withLock { $0.append("mismatch \(i)") } }
            } catch { errors.withLock { $0.append("\(error)") } }
        }
        #expect(errors.withLock { $0 } == [])
        #expect(try repo.list(prefix: "conc/").count == 8)
        try raceCreateOnly(repo)
    }

    /// Eight threads write the same key create-only at once, each its own bytes: exactly one write succeeds, the
    /// others fail with `repo.object-exists`, and the object holds the winner's bytes.
    public static func raceCreateOnly(_ repo: any Repository) throws {
        let outcomes = Mutex<[Int: ErrorCode?]>([:])
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let c = code { try repo.put("race/key", bytes(4000, seed: UInt64(100 + i)), options: .createOnly) }
            outcomes.withLock { $0[i] = c }
        }
        let all = outcomes.withLock { $0 }
        let winners = all.filter { $0.value == nil }.map(\.key)
        #expect(winners.count == 1, "create-only race: \(all)")
        #expect(all.values.allSatisfy { $0 == nil || $0 == .repoObjectExists }, "create-only race: \(all)")
        if let w = winners.first { #expect(try repo.getBytes("race/key") == bytes(4000, seed: UInt64(100 + w))) }
    }
}
