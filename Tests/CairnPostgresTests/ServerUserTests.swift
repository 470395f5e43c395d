import CairnBase
import Foundation
import Testing

@testable import CairnPostgres

/// Who runs PostgreSQL's server programs when cairn was started as root (unit test; the integration test is
/// DrillTests.aDrillStartedAsRootRunsAsTheClusterOwner).
@Suite struct ServerUserTests {
    static let postgres = OSUser(name: "postgres", uid: 105, gid: 110, home: "/var/lib/postgresql")
    static let dba = OSUser(name: "dba", uid: 1001, gid: 1001, home: "/home/dba")
    static func byID(_ uid: uid_t) -> OSUser? { [105: postgres, 1001: dba][uid] }

    @Test func theDataDirectoryOwnerThenPostgresElseARefusal() throws {
        let owned = try ServerUser.resolve(
            dataDirectory: "/srv/pg", owner: { _ in 1001 }, byID: Self.byID, byName: { _ in Self.postgres })
        #expect(owned == Self.dba)
        // Missing, or owned by root: the postgres account.
        for owner: uid_t? in [nil, 0] {
            let u = try ServerUser.resolve(
                dataDirectory: "/srv/pg", owner: { _ in owner }, byID: Self.byID, byName: { _ in Self.postgres })
            #expect(u == Self.postgres)
        }
        #expect(
            try ServerUser.resolve(
                dataDirectory: nil, owner: { _ in nil }, byID: Self.byID, byName: { _ in Self.postgres })
                == Self.postgres)
        let e = #expect(throws: CairnError.self) {
            try ServerUser.resolve(dataDirectory: nil, owner: { _ in nil }, byID: Self.byID, byName: { _ in nil })
        }
        #expect(e?.code == .configInvalid)
        #expect(e?.message.contains("refuse") == true && e?.hint?.contains("runuser -u postgres") == true)
    }

    @Test func accountsAreLookedUp() {
        #expect(OSUser.withID(0)?.name == "root")
        #expect(OSUser.named("root")?.uid == 0)
        #expect(OSUser.named("no-such-user-\(UInt32.random(in: 0...UInt32.max))") == nil)
        #expect(OSUser.owner(of: "/") == 0)
    }
}
