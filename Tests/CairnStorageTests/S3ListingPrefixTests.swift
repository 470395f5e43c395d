import Testing

@testable import CairnStorage

/// Which prefixes the S3 driver lists to find the versions of a set of keys (Object Lock deletes).
@Suite struct S3ListingPrefixTests {
    @Test func listingPrefixesArePerFolderAndShared() {
        #expect(
            S3Repository.listingPrefixes(for: [
                "wal/00000001/000000010000000000000003.zst", "wal/00000001/000000010000000000000004.zst",
                "backups/x/manifest.json", "backups/x/base-1.tar.zst", "backups/x/db/a.dump.zst", "cairn.json"
            ]) == [
                "backups/x/", "backups/x/db/a.dump.zst", "cairn.json", "wal/00000001/00000001000000000000000"
            ])
    }
}
