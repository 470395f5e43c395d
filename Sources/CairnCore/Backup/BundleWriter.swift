import CairnBase
import CairnStorage
import Foundation

/// Cuts one archive's tar stream into bundles at file boundaries: each bundle is a valid tar of whole files
/// (ending with the two end-of-archive blocks), stored through the pipeline. Bundles restore independently and
/// in parallel.
final class BundleWriter {
    let repo: any Repository
    let pipeline: Pipeline
    let backupId: String
    let archive: String
    let bundleSize: Int64
    private(set) var objects: [BackupManifest.Object] = []
    private var current: StoreStream?
    private var files = 0
    private var firstPath: String?
    private var lastPath: String?
    private var contents = BackupManifest.BundleContents()
    private var index = 0
    private lazy var splitter = TarSplitter(
        onEntry: { [unowned self] in try self.entry($0) },
        emit: { [unowned self] in try self.current?.write($0) })

    init(repo: any Repository, pipeline: Pipeline, backupId: String, archive: String, bundleSize: Int64) {
        self.repo = repo
        self.pipeline = pipeline
        self.backupId = backupId
        self.archive = archive
        self.bundleSize = bundleSize
    }

    /// Feeds tar bytes of the archive.
    func write(_ bytes: UnsafeRawBufferPointer) throws { try splitter.feed(bytes) }

    private func entry(_ h: TarHeader) throws {
        if let c = current, c.bytesIn >= bundleSize { try close() }
        if current == nil {
            index += 1
            current = try pipeline.beginStore(
                repo, key: Layout.bundleKey(backupId, archive: archive, index: index),
                options: .createOnly, contentDigest: false)
            files = 0
            firstPath = nil
            contents = BackupManifest.BundleContents()
        }
        if !h.isMeta {
            files += 1
            firstPath = firstPath ?? h.name
            lastPath = h.name
        }
        contents.add(h)
    }

    private func close() throws {
        guard let c = current else { return }
        current = nil
        try [UInt8](repeating: 0, count: 2 * TarHeader.block).withUnsafeBytes { try c.write($0) }
        let digest = try c.finish()
        objects.append(
            BackupManifest.Object(
                key: c.key, digest: digest, files: files, firstPath: firstPath, lastPath: lastPath, contents: contents))
    }

    /// Ends the archive: checks the tar stream ended cleanly and commits the last bundle.
    func finish() throws -> [BackupManifest.Object] {
        try splitter.finish()
        try close()
        return objects
    }

    func abort() {
        current?.abort()
        current = nil
    }
}
