import CairnBase
import CairnPostgres
import Foundation

/// Which archived segments `cairn find` decodes for a time range, in chunks decoded in parallel (pure).
///
/// A segment is stored after every commit it holds, so a segment stored before `since` holds nothing newer and is
/// skipped; the scan goes on through the first segment stored after `until` (commits just before `until` may sit in
/// it). Each chunk is decoded with the segment after it, so records that cross into the next segment are read whole;
/// a record belongs to the chunk it starts in.
public struct FindPlan: Sendable, Equatable {
    /// Consecutive segments of one timeline, plus the segment after them when the archive has it.
    public struct Chunk: Sendable, Equatable {
        public var segments: [WALSegment]
        public var next: WALSegment?
        /// Records starting at or after this LSN belong to the next chunk.
        public var end: LSN { LSN((segments.last!.number + 1) * UInt64(segments.last!.segmentSize)) }
        public var start: LSN { LSN(segments[0].number * UInt64(segments[0].segmentSize)) }
    }

    public var since: Date
    public var until: Date
    public var chunks: [Chunk]
    /// Segments missing inside the range: what happened there is unknown.
    public var missing: [String]

    public var segmentCount: Int { chunks.reduce(0) { $0 + $1.segments.count } }

    /// Segments per chunk: 4 segments and the next, so at most 5 segments per parallel lane are on disk at once.
    public static let chunkSize = 4
    /// The default range: the archive's last 24 hours.
    public static let defaultSpan: Double = 24 * 3600

    /// The plan for `[since, until]` (defaults: the last 24 hours of the archive) on production's history.
    public static func make(
        _ catalog: Catalog, since: Date?, until: Date?, chunkSize: Int = chunkSize
    ) throws
        -> FindPlan
    {
        let path = catalog.lineage.productionPath
        let all = path.timelines.flatMap { tli in
            (catalog.wal.segments[tli] ?? [:]).filter {
                path.timeline(forSegment: $0.key, segmentSize: catalog.wal.segmentSize) == tli
            }
            .map { (number: $0.key, timeline: tli, stored: $0.value.stored) }
        }.sorted { $0.number < $1.number }
        guard let newest = all.compactMap(\.stored).max() else {
            throw CairnError(
                .walMissing, "the repository has no archived WAL to search",
                hint: "archive WAL with archive_command = 'cairn wal-push %p' (see runbooks/wal-archiving.md)")
        }
        // Stores keep modification times in whole seconds (S3): a segment may hold commits up to a second after
        // its recorded time.
        let until = until ?? newest.addingTimeInterval(1)
        let since = since ?? until.addingTimeInterval(-defaultSpan)
        guard since < until else {
            throw CairnError(
                .usage, "--since (\(Timestamp.format(since))) must be before --until (\(Timestamp.format(until)))")
        }
        let first = all.firstIndex { ($0.stored ?? .distantFuture).addingTimeInterval(1) >= since }
        let last = all.firstIndex { ($0.stored ?? .distantFuture) > until } ?? all.count - 1
        let beforeArchive = first == 0 && (all[0].stored ?? .distantPast) > until
        guard let first, first <= last, !beforeArchive else {
            throw CairnError(
                .walMissing,
                "no archived WAL between \(Timestamp.format(since)) and \(Timestamp.format(until)): the archive holds segments stored from \(Timestamp.format(all.compactMap(\.stored).min() ?? newest)) to \(Timestamp.format(newest))",
                hint: "choose --since and --until inside the archive's range (`cairn info` shows it)")
        }
        let seg = catalog.wal.segmentSize
        let segments = all.map { WALSegment(timeline: $0.timeline, number: $0.number, segmentSize: seg) }
        var plan = FindPlan(since: since, until: until, chunks: [], missing: [])
        (plan.chunks, plan.missing) = chunks(segments, first: first, last: last, chunkSize: chunkSize, path: path)
        return plan
    }

    /// Chunks of `segments[first...last]` (consecutive, one timeline, at most `chunkSize`), each with the segment
    /// after it when the archive has it, and the segments missing between them.
    static func chunks(
        _ segments: [WALSegment], first: Int, last: Int, chunkSize: Int, path: TimelinePath
    ) -> ([Chunk], [String]) {
        var (chunks, missing) = ([Chunk](), [String]())
        var i = first
        while i <= last {
            var chunk = [segments[i]]
            while chunk.count < chunkSize, i + 1 <= last, segments[i + 1] == chunk.last!.next {
                i += 1
                chunk.append(segments[i])
            }
            let next = i + 1 < segments.count && segments[i + 1] == chunk.last!.next ? segments[i + 1] : nil
            if i + 1 <= last, next == nil {
                let size = chunk[0].segmentSize
                for m in (chunk.last!.number + 1)..<max(chunk.last!.number + 1, segments[i + 1].number) {
                    let tli = path.timeline(forSegment: m, segmentSize: size)
                    missing.append(WALSegment(timeline: tli, number: m, segmentSize: size).name)
                }
            }
            chunks.append(Chunk(segments: chunk, next: next))
            i += 1
        }
        return (chunks, missing)
    }
}
