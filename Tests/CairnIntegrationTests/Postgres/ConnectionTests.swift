import CairnBase
import Foundation
import TestSupport
import Testing

@testable import CairnPostgres

@Suite(.enabled(if: TestEnvironment.integrationEnabled)) struct ConnectionTests {
    @Test func readsClusterFacts() throws {
        let c = try PGConnection(conninfo: TestCluster.conninfo)
        let info = try ClusterInfo.read(c)
        #expect(info.majorVersion == 15)
        #expect(info.walSegmentSize == 16 << 20)
        #expect(info.systemIdentifier.count >= 15 && info.systemIdentifier.allSatisfy(\.isNumber))
        #expect(info.dataDirectory == TestEnvironment.value("CAIRN_TEST_PGDATA"))
        #expect(try c.query("SELECT $1::int + 1, NULL::text", ["41"]) == [["42", nil]])
    }

    @Test func connectionFailuresAreClassified() {
        let e = #expect(throws: CairnError.self) {
            try PGConnection(conninfo: "host=127.0.0.1 port=9 connect_timeout=2")
        }
        #expect(e?.code == .pgUnreachable)
        let a = #expect(throws: CairnError.self) {
            try PGConnection(conninfo: TestCluster.conninfo, overrides: ["user": "nobody_here"])
        }
        #expect(a?.code == .pgAuth)
    }

    @Test func queryErrorsCarryPostgresMessage() throws {
        let c = try PGConnection(conninfo: TestCluster.conninfo)
        let e = #expect(throws: CairnError.self) { try c.query("SELECT * FROM no_such_table") }
        #expect(e?.code == .pgQuery)
        #expect(e?.message.contains("no_such_table") == true)
    }
}
