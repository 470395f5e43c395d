import Testing

@testable import CairnStorage

/// The small XML reader for S3's answers.
@Suite struct XMLTests {
    @Test func readsAnS3Listing() throws {
        let doc = """
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Name>bench</Name><IsTruncated>true</IsTruncated>
              <Contents><Key>wal/a&amp;b &lt;&gt; &quot;q&quot; &apos;s&apos; &#233;&#x263A;.zst</Key><Size>42</Size></Contents>
              <Contents><Key><![CDATA[x<y&z]]></Key><Size>7</Size><Owner/></Contents>
              <NextContinuationToken>t0k=</NextContinuationToken>
            </ListBucketResult>

            """
        let x = try #require(XMLElement.parse(Array(doc.utf8)))
        #expect(x.name == "ListBucketResult")
        #expect(x.text("IsTruncated") == "true" && x.text("NextContinuationToken") == "t0k=")
        let contents = x.all("Contents")
        #expect(contents.map { $0.text("Key") } == ["wal/a&b <> \"q\" 's' é☺.zst", "x<y&z"])
        #expect(contents.map { $0.text("Size") } == ["42", "7"])
        #expect(contents[1].child("Owner")?.children.isEmpty == true)
        #expect(
            XMLElement.parse(Array("<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>".utf8))?.text(
                "Code") == "SlowDown")
    }

    @Test func refusesWhatIsNotWellFormed() {
        for bad in [
            "", "text", "<a>", "<a></b>", "<a><b></a></b>", "<a>&bogus;</a>", "<a>&amp</a>", "<a></a><b></b>",
            "<a></a>junk", "<a x=1></a>", "<a x=\"1></a>", "</a>", "<a><![CDATA[x</a>", "<a><!-- x</a>"
        ] {
            #expect(XMLElement.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func escapedTextReadsBack() throws {
        let key = "a&b<c>\"d\"'e' ü"
        let x = try #require(XMLElement.parse(Array("<Key>\(XMLElement.escape(key))</Key>".utf8)))
        #expect(x.text == key)
    }
}
