import Foundation

/// The JSON shape of a backup in `backup`, `list` and `info`.
public struct BackupSummary: Encodable, Sendable {
    public var id: String
    public var type: String
    public var startTime: Date
    public var stopTime: Date
    public var startLSN: String
    public var stopLSN: String
    public var timeline: UInt32
    public var startWAL: String
    public var stopWAL: String
    public var size: Int64
    public var storedSize: Int64
    public var objects: Int
    public var durationSeconds: Double
    public var pin: String?
    public var databases: [String]?
    /// The backup an incremental or differential builds on.
    public var parent: String?
    /// Bytes stored by the whole chain a restore of this backup reads (incremental and differential backups).
    public var chainStoredSize: Int64?

    public init(_ m: BackupManifest, pin: Pin? = nil, catalog: Catalog? = nil) {
        id = m.id
        type = m.kind.rawValue
        startTime = m.start.time
        stopTime = m.stop.time
        startLSN = m.start.lsn.description
        stopLSN = m.stop.lsn.description
        timeline = m.stop.timeline
        startWAL = m.start.wal
        stopWAL = m.stop.wal
        size = m.size
        storedSize = m.storedSize
        objects = m.allObjects.count
        durationSeconds = m.durationSeconds
        self.pin = pin?.reason
        databases = m.databases?.map(\.name)
        parent = m.parent
        if m.parent != nil { chainStoredSize = catalog?.chainStoredSize(m.id) }
    }

    enum CodingKeys: String, CodingKey {
        case id, type, timeline, size, objects, pin, databases, parent
        case startTime = "start_time"
        case stopTime = "stop_time"
        case startLSN = "start_lsn"
        case stopLSN = "stop_lsn"
        case startWAL = "start_wal"
        case stopWAL = "stop_wal"
        case storedSize = "stored_size"
        case durationSeconds = "duration_seconds"
        case chainStoredSize = "chain_stored_size"
    }
}
