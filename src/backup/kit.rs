//! The recovery kit: everything needed to get the data back on a fresh host with only this page —
//! the recovery identity as text and QR code, the repository locations and their wrapped keys,
//! what the admin must supply, and the restore commands in German and English. Rendered as a
//! terminal page and written as a text file or an A4 PDF (with the QR code as vector squares)
//! for printing.

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;

pub struct KitTarget {
    pub name: String,
    /// restic repository string, e.g. `/mnt/usb/hafen` or `sftp:user@host:/path`.
    pub location: String,
    /// What the admin must bring besides this kit (credentials hafen does not print).
    pub supply: Option<String>,
    /// The armored age file with the repository key.
    pub wrapped_key: Option<String>,
}

pub struct Kit {
    pub identity: String,
    pub recipient: String,
    pub label: String,
    pub host: String,
    pub created: String,
    pub targets: Vec<KitTarget>,
}

/// The identity as a terminal QR code (two modules per character cell).
pub fn qr_terminal(data: &str) -> String {
    match QrCode::new(data.as_bytes()) {
        Ok(code) => code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build(),
        Err(e) => format!("(QR code not possible: {e})"),
    }
}

impl Kit {
    /// The whole kit as text; `with_qr` adds the terminal QR code.
    pub fn render(&self, with_qr: bool) -> String {
        let (mut s, tail) = self.text_parts();
        if with_qr && !self.identity.is_empty() {
            s += &qr_terminal(&self.identity);
            s += "\n";
        }
        s + &tail
    }

    /// The text before and after the place of the QR code.
    fn text_parts(&self) -> (String, String) {
        let mut s = String::new();
        let line = "=".repeat(78);
        s += &format!("{line}\nhafen — Notfall-Wiederherstellungsset / Recovery kit\n{line}\n");
        s += &format!("Box / box: {}   erstellt / created: {}   Name / label: {}\n\n", self.host, self.created, self.label);
        s += "VERTRAULICH. Wer diese Seite hat, kann alle Sicherungen lesen. Versiegelt aufbewahren\n";
        s += "(z. B. Tresor und zweite Kopie bei der Vorstandsvorsitzenden).\n";
        s += "CONFIDENTIAL. Whoever holds this page can read every backup. Keep it sealed\n";
        s += "(e.g. a safe, and a second copy with the chair of the board).\n\n";
        if self.identity.is_empty() {
            s += "Ohne Identität: sie steht nur auf dem versiegelten Set von `hafen keys init`.\n";
            s += "Identity not included: it is only on the sealed kit printed by `hafen keys init`.\n\n";
        } else {
            s += "Wiederherstellungs-Identität / recovery identity (age):\n\n";
            s += &format!("    {}\n\n", self.identity);
        }
        s += &format!("Öffentlicher Empfänger / public recipient: {}\n\n", self.recipient);
        let head = std::mem::take(&mut s);
        s += "Sicherungsziele / backup targets:\n";
        if self.targets.is_empty() {
            s += "  (noch keine konfiguriert / none configured yet — run `hafen keys kit` again after adding one)\n";
        }
        for t in &self.targets {
            s += &format!("\n  {}: {}\n", t.name, t.location);
            if let Some(sup) = &t.supply {
                s += &format!("    Selbst mitbringen / supply yourself: {sup}\n");
            }
            match &t.wrapped_key {
                Some(k) => {
                    if t.location.starts_with('/') {
                        s += &format!("    Schlüsseldatei / key file repo-key-{}.age (auch im Ziel als hafen-repo-key.age / also in the target):\n", t.name);
                    } else {
                        s += &format!("    Schlüsseldatei / key file repo-key-{}.age (nur hier / only here):\n", t.name);
                    }
                    for l in k.lines() {
                        s += &format!("    {l}\n");
                    }
                }
                None => s += "    (Schlüssel entsteht bei der ersten Sicherung / key is created by the first backup)\n",
            }
        }
        // The same steps in both languages; only commands that exist in this hafen.
        for (title, with_hafen, identity, list, restore, all, remote, without, keyfile, target, dir) in [
            (
                "WIEDERHERSTELLEN (Deutsch)",
                "Mit hafen auf einem Rechner mit Docker und hafen, ohne die alte Box:",
                "Identität oben in eine Datei schreiben: recovery.txt (nur für root lesbar)",
                "Snapshots ansehen",
                "einen Stack (oder mit --path einen Teil) in ein leeres Verzeichnis holen",
                "neuer Rechner: hafens Zustand und alle Stacks mit ihren Daten zurückholen",
                "Entfernte Ziele: dazu --ssh-key/--known-hosts (SFTP), --credentials/--region (S3) angeben; die Kit-Datei als --identity enthält die Schlüssel",
                "Ohne hafen, nur mit age und restic (Debian: apt-get install age restic):",
                "Schlüsseldatei von oben als repo-key.age speichern (oder hafen-repo-key.age aus dem Ziel nehmen)",
                "<Ziel>",
                "/srv/wiederherstellung",
            ),
            (
                "RESTORE (English)",
                "With hafen on any machine with Docker and hafen, without the old box:",
                "Write the identity above to a file: recovery.txt (readable by root only)",
                "see the snapshots",
                "get a stack (or, with --path, a part of it) into an empty directory",
                "new machine: bring back hafen's state and every stack with its data",
                "Remote targets: add --ssh-key/--known-hosts (SFTP), --credentials/--region (S3); the kit file as --identity holds the keys",
                "Without hafen, with age and restic only (Debian: apt-get install age restic):",
                "Save the key file above as repo-key.age (or take hafen-repo-key.age from the target)",
                "<target>",
                "/srv/restore",
            ),
        ] {
            s += &format!("\n{line}\n{title}\n{line}\n{with_hafen}\n");
            s += &format!("  1. {identity}\n");
            s += &format!("  2. hafen restore --repo {target} --identity recovery.txt --list   ({list})\n");
            s += &format!("  3. hafen restore --repo {target} --identity recovery.txt latest --stack <name> --to {dir}   ({restore})\n");
            s += &format!("  4. hafen restore --repo {target} --identity recovery.txt --all   ({all})\n");
            s += &format!("     {remote}\n");
            s += &format!("{without}\n  1. {keyfile}\n");
            s += "  2. age -d -i recovery.txt repo-key.age > repo.pw\n";
            s += &format!("  3. restic -r {target} --password-file repo.pw snapshots\n");
            s += &format!("  4. restic -r {target} --password-file repo.pw restore latest --tag stack:<name> --target {dir}\n");
        }
        (head, s)
    }

    /// The kit as an A4 PDF for printing: the text of `render(false)` in Courier (WinAnsi, so
    /// umlauts print; what Courier cannot show becomes ASCII), on as many pages as needed, with
    /// the identity as a vector QR code on the first page where the terminal page shows it.
    pub fn pdf(&self) -> Vec<u8> {
        let (head, tail) = self.text_parts();
        let mut items: Vec<PdfItem> = head.lines().map(|l| PdfItem::Line(winansi(l))).collect();
        if !self.identity.is_empty() {
            if let Ok(code) = QrCode::new(self.identity.as_bytes()) {
                let width = code.width();
                let dark = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
                items.push(PdfItem::Qr { width, dark });
            }
        }
        items.extend(tail.lines().map(|l| PdfItem::Line(winansi(l))));
        // Bold: the identity, and titles between two rules of `=`.
        let identity = winansi(self.identity.trim());
        let line_at = |j: Option<usize>| match j.and_then(|j| items.get(j)) {
            Some(PdfItem::Line(l)) => Some(l.as_slice()),
            _ => None,
        };
        let rule = |l: Option<&[u8]>| l.is_some_and(|l| !l.is_empty() && l.iter().all(|&b| b == b'='));
        let bold: Vec<bool> = (0..items.len())
            .map(|i| {
                line_at(Some(i)).is_some_and(|l| {
                    (!identity.is_empty() && l.trim_ascii() == identity.as_slice()) || (rule(line_at(i.checked_sub(1))) && rule(line_at(Some(i + 1))))
                })
            })
            .collect();

        // Lay the items out on pages first, so each page can say how many there are.
        let cols = ((PAGE_W - 2.0 * MARGIN) / (FONT_SIZE * COURIER_ADVANCE)).floor() as usize;
        let top = PAGE_H - MARGIN - FONT_SIZE;
        let wrapped: Vec<Vec<Vec<u8>>> = items
            .iter()
            .map(|item| match item {
                PdfItem::Line(l) => wrap(l, cols),
                PdfItem::Qr { .. } => Vec::new(),
            })
            .collect();
        let blank = |i: usize| matches!(&items[i], PdfItem::Line(l) if l.trim_ascii().is_empty());
        let mut pages: Vec<Vec<PdfOp>> = vec![Vec::new()];
        let mut y = top;
        for (i, item) in items.iter().enumerate() {
            match item {
                PdfItem::Line(_) => {
                    if blank(i) && y == top {
                        continue; // no blank line at the top of a page
                    }
                    // A paragraph (lines between blank lines: a target, a restore section) is kept
                    // on one page when it is not longer than half a page.
                    let starts_block = !blank(i) && (i == 0 || blank(i - 1) || matches!(items[i - 1], PdfItem::Qr { .. }));
                    if starts_block && y < top {
                        let n: usize = (i..items.len()).take_while(|&j| matches!(items[j], PdfItem::Line(_)) && !blank(j)).map(|j| wrapped[j].len()).sum();
                        let height = n as f32 * LEADING;
                        if y - height + LEADING < MARGIN && height <= (top - MARGIN) / 2.0 {
                            pages.push(Vec::new());
                            y = top;
                        }
                    }
                    for part in &wrapped[i] {
                        if y < MARGIN {
                            pages.push(Vec::new());
                            y = top;
                        }
                        pages.last_mut().expect("a page").push(PdfOp::Text { x: MARGIN, y, bytes: part.clone(), bold: bold[i] });
                        y -= LEADING;
                    }
                }
                PdfItem::Qr { width, dark } => {
                    let size = (*width + 2 * QR_QUIET) as f32 * QR_MODULE;
                    // y is the next baseline; the block starts at the top of that line.
                    let block_top = y + FONT_SIZE;
                    if block_top - size < MARGIN {
                        pages.push(Vec::new());
                        y = top;
                    }
                    let block_top = y + FONT_SIZE;
                    // The dark modules start in the column of the indented identity.
                    let x = MARGIN + 4.0 * FONT_SIZE * COURIER_ADVANCE;
                    let mut rects = Vec::new();
                    for row in 0..*width {
                        let mut col = 0;
                        while col < *width {
                            if dark[row * width + col] {
                                let start = col;
                                while col < *width && dark[row * width + col] {
                                    col += 1;
                                }
                                let ry = block_top - (QR_QUIET + row + 1) as f32 * QR_MODULE;
                                rects.push((x + start as f32 * QR_MODULE, ry, (col - start) as f32 * QR_MODULE, QR_MODULE));
                            } else {
                                col += 1;
                            }
                        }
                    }
                    pages.last_mut().expect("a page").push(PdfOp::Rects(rects));
                    y = block_top - size - FONT_SIZE;
                }
            }
        }

        use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
        let (catalog_id, tree_id, font_id, bold_id, info_id) = (Ref::new(1), Ref::new(2), Ref::new(3), Ref::new(4), Ref::new(5));
        let page_ids: Vec<(Ref, Ref)> = (0..pages.len() as i32).map(|i| (Ref::new(6 + 2 * i), Ref::new(7 + 2 * i))).collect();
        let (regular, strong) = (Name(b"F1"), Name(b"F2"));
        let mut pdf = Pdf::new();
        pdf.catalog(catalog_id).pages(tree_id);
        pdf.pages(tree_id).kids(page_ids.iter().map(|p| p.0)).count(pages.len() as i32);
        pdf.type1_font(font_id).base_font(Name(b"Courier")).encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.type1_font(bold_id).base_font(Name(b"Courier-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
        pdf.document_info(info_id).title(TextStr("hafen recovery kit")).creator(TextStr("hafen"));
        let total = pages.len();
        for (n, (ops, (page_id, content_id))) in pages.iter().zip(&page_ids).enumerate() {
            let mut page = pdf.page(*page_id);
            page.parent(tree_id).media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H)).contents(*content_id);
            {
                let mut resources = page.resources();
                let mut fonts = resources.fonts();
                fonts.pair(regular, font_id).pair(strong, bold_id);
                fonts.finish();
            }
            page.finish();
            let mut content = Content::new();
            content.set_fill_gray(0.0);
            for op in ops {
                match op {
                    PdfOp::Text { x, y, bytes, bold } => {
                        content.begin_text().set_font(if *bold { strong } else { regular }, FONT_SIZE).next_line(*x, *y).show(Str(bytes)).end_text();
                    }
                    PdfOp::Rects(rects) => {
                        // One path, one fill: no hairline seams between the modules.
                        for (x, y, w, h) in rects {
                            content.rect(*x, *y, *w, *h);
                        }
                        content.fill_nonzero();
                    }
                }
            }
            let footer = winansi(&format!("hafen — Wiederherstellungsset / recovery kit — Seite / page {} / {total}", n + 1));
            content.begin_text().set_font(regular, FOOTER_SIZE).next_line(MARGIN, MARGIN / 2.0).show(Str(&footer)).end_text();
            pdf.stream(*content_id, &content.finish());
        }
        pdf.finish()
    }
}

// A4 in points; Courier's glyphs are all 600/1000 em wide.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 48.0;
const FONT_SIZE: f32 = 8.5;
const FOOTER_SIZE: f32 = 7.0;
const LEADING: f32 = 10.5;
const COURIER_ADVANCE: f32 = 0.6;
/// Size of one QR module in points (about 1.2 mm) and the quiet zone in modules.
const QR_MODULE: f32 = 3.5;
const QR_QUIET: usize = 4;

enum PdfItem {
    /// One line of the text, already in WinAnsiEncoding.
    Line(Vec<u8>),
    Qr { width: usize, dark: Vec<bool> },
}

enum PdfOp {
    Text { x: f32, y: f32, bytes: Vec<u8>, bold: bool },
    Rects(Vec<(f32, f32, f32, f32)>),
}

/// `line` in WinAnsiEncoding, one byte per glyph; characters the standard fonts cannot show
/// become ASCII (box drawing and block elements) or `?`.
fn winansi(line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for c in line.chars() {
        let b: &[u8] = match c {
            ' '..='~' => {
                out.push(c as u8);
                continue;
            }
            '\u{a0}'..='\u{ff}' => {
                out.push(c as u32 as u8);
                continue;
            }
            '\t' => b"    ",
            '€' => &[0x80],
            '‚' => &[0x82],
            'ƒ' => &[0x83],
            '„' => &[0x84],
            '…' => &[0x85],
            '†' => &[0x86],
            '‡' => &[0x87],
            'ˆ' => &[0x88],
            '‰' => &[0x89],
            'Š' => &[0x8a],
            '‹' => &[0x8b],
            'Œ' => &[0x8c],
            'Ž' => &[0x8e],
            '‘' => &[0x91],
            '’' => &[0x92],
            '“' => &[0x93],
            '”' => &[0x94],
            '•' => &[0x95],
            '–' => &[0x96],
            '—' => &[0x97],
            '˜' => &[0x98],
            '™' => &[0x99],
            'š' => &[0x9a],
            '›' => &[0x9b],
            'œ' => &[0x9c],
            'ž' => &[0x9e],
            'Ÿ' => &[0x9f],
            '→' => b"->",
            '←' => b"<-",
            '─' | '━' | '┄' | '┅' | '┈' | '┉' | '╌' | '╍' => b"-",
            '═' => b"=",
            '│' | '┃' | '┆' | '┇' | '┊' | '┋' | '║' | '╎' | '╏' => b"|",
            '\u{2500}'..='\u{257f}' => b"+",
            '\u{2580}'..='\u{259f}' => b"#",
            _ => b"?",
        };
        out.extend_from_slice(b);
    }
    out
}

/// Breaks an encoded line into pieces of at most `cols` glyphs, at spaces where possible;
/// continuation lines are indented four more than the line itself.
fn wrap(line: &[u8], cols: usize) -> Vec<Vec<u8>> {
    if line.len() <= cols {
        return vec![line.to_vec()];
    }
    let indent = line.iter().take_while(|&&b| b == b' ').count();
    let cont = (indent + 4).min(cols / 2);
    let mut out = Vec::new();
    let mut rest = line;
    let mut prefix = 0;
    while prefix + rest.len() > cols {
        let room = cols - prefix;
        // The last space inside the room that is not part of the leading indent.
        let cut = rest[..=room].iter().rposition(|&b| b == b' ').filter(|&p| p > 0 && rest[..p].iter().any(|&b| b != b' '));
        let (piece, next) = match cut {
            Some(p) => (&rest[..p], &rest[p + 1..]),
            None => (&rest[..room], &rest[room..]),
        };
        let mut l = vec![b' '; prefix];
        l.extend_from_slice(piece);
        out.push(l);
        rest = next;
        while rest.first() == Some(&b' ') {
            rest = &rest[1..];
        }
        prefix = cont;
    }
    if !rest.is_empty() {
        let mut l = vec![b' '; prefix];
        l.extend_from_slice(rest);
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_names_everything_needed() {
        let (kit, id) = kit(vec![KitTarget { name: "usb".into(), location: "/mnt/usb/hafen".into(), supply: None, wrapped_key: Some("-----BEGIN AGE ENCRYPTED FILE-----\nx\n-----END AGE ENCRYPTED FILE-----".into()) }]);
        let page = kit.render(true);
        for want in [id.expose_secret(), id.recipient.as_str(), "/mnt/usb/hafen", "BEGIN AGE ENCRYPTED FILE", "WIEDERHERSTELLEN", "RESTORE (English)", "restic -r", "hafen restore --repo"] {
            assert!(page.contains(want), "kit lacks {want}");
        }
        assert!(page.contains("--all"), "the kit names the whole-box restore");
        assert!(page.contains('█') || page.contains('▀') || page.contains('▄'), "no QR code");
    }

    /// Runs a tool the test needs; a missing tool fails the test, it never skips.
    fn tool(cmd: &str, args: &[&str]) -> String {
        let out = std::process::Command::new(cmd)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd} is needed by this test and could not run ({e}); apt-get install poppler-utils zbar-tools"));
        assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("tool output is UTF-8")
    }

    fn kit(targets: Vec<KitTarget>) -> (Kit, crate::keys::NewIdentity) {
        let id = crate::keys::generate_identity();
        let kit = Kit {
            identity: id.expose_secret().to_string(),
            recipient: id.recipient.clone(),
            label: "kit-1".into(),
            host: "box".into(),
            created: "2026-11-28".into(),
            targets,
        };
        (kit, id)
    }

    #[test]
    fn kit_pdf_prints_text_umlauts_and_a_readable_qr_code() {
        let armored = "-----BEGIN AGE ENCRYPTED FILE-----\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBhYmNkZWZnaGlqa2xtbm9w\n-----END AGE ENCRYPTED FILE-----";
        let (kit, id) = kit(vec![
            KitTarget { name: "usb".into(), location: "/mnt/usb/hafen".into(), supply: None, wrapped_key: Some(armored.into()) },
            KitTarget { name: "nas".into(), location: "sftp:backup@nas:/srv/hafen".into(), supply: Some("SSH-Schlüssel für backup@nas".into()), wrapped_key: None },
        ]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kit.pdf");
        let pdf = kit.pdf();
        assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
        std::fs::write(&file, &pdf).unwrap();
        let file = file.to_str().unwrap();

        let text = tool("pdftotext", &["-layout", file, "-"]);
        for want in [
            id.expose_secret(),
            id.recipient.as_str(),
            "/mnt/usb/hafen",
            "sftp:backup@nas:/srv/hafen",
            "BEGIN AGE ENCRYPTED FILE",
            "WIEDERHERSTELLEN",
            "Schlüssel",
            "RESTORE (English)",
            "Öffentlicher Empfänger",
            "hafen — Notfall-Wiederherstellungsset",
            "Identität",
            "SSH-Schlüssel für backup@nas",
            "restic -r <target> --password-file repo.pw snapshots",
        ] {
            assert!(text.contains(want), "the PDF's text lacks {want:?}:\n{text}");
        }

        let png = dir.path().join("page1");
        tool("pdftoppm", &["-r", "150", "-png", "-f", "1", "-l", "1", "-singlefile", file, png.to_str().unwrap()]);
        let decoded = tool("zbarimg", &["--raw", "-q", dir.path().join("page1.png").to_str().unwrap()]);
        assert_eq!(decoded.trim_end_matches('\n'), id.expose_secret(), "the QR code on page 1 is not the identity");
    }

    #[test]
    fn kit_pdf_runs_onto_more_pages_and_wraps_long_lines() {
        let armored = format!("-----BEGIN AGE ENCRYPTED FILE-----\n{}-----END AGE ENCRYPTED FILE-----", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n".repeat(8));
        let targets = (0..8)
            .map(|i| KitTarget { name: format!("ziel{i}"), location: format!("/mnt/ziel{i}/hafen"), supply: None, wrapped_key: Some(armored.clone()) })
            .collect();
        let (kit, id) = kit(targets);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kit.pdf");
        std::fs::write(&file, kit.pdf()).unwrap();
        let file = file.to_str().unwrap();
        let info = tool("pdfinfo", &[file]);
        let pages: usize = info.lines().find_map(|l| l.strip_prefix("Pages:")).expect("pdfinfo names the pages").trim().parse().unwrap();
        assert!(pages >= 2, "eight targets with keys need more than one page, got {pages}");
        let text = tool("pdftotext", &["-layout", file, "-"]);
        for i in 0..8 {
            assert!(text.contains(&format!("/mnt/ziel{i}/hafen")), "target {i} missing");
        }
        assert!(text.contains(id.expose_secret()) && text.contains("RESTORE (English)"));
        assert!(text.contains(&format!("Seite / page {pages} / {pages}")), "no page footer");
        // The long remote-targets line is wrapped, not cut off at the page edge.
        assert!(text.contains("angeben;") && text.contains("Schlüssel"), "long line lost:\n{text}");
        // Nothing runs past the right margin: no line is longer than the page's columns.
        let cols = ((PAGE_W - 2.0 * MARGIN) / (FONT_SIZE * COURIER_ADVANCE)).floor() as usize;
        for line in kit.render(false).lines() {
            for part in wrap(&winansi(line), cols) {
                assert!(part.len() <= cols, "{line:?} overflows");
            }
        }
    }

    #[test]
    fn winansi_keeps_german_and_replaces_the_rest() {
        assert_eq!(winansi("äöüßÄÖÜ"), vec![0xe4, 0xf6, 0xfc, 0xdf, 0xc4, 0xd6, 0xdc]);
        assert_eq!(winansi("— „x“ –"), vec![0x97, b' ', 0x84, b'x', 0x93, b' ', 0x96]);
        assert_eq!(winansi("┌─┐│█═"), b"+-+|#=".to_vec());
        assert_eq!(winansi("日"), b"?".to_vec());
        assert_eq!(wrap(b"  aaa bbb ccc", 8), vec![b"  aaa".to_vec(), b"    bbb".to_vec(), b"    ccc".to_vec()]);
        assert_eq!(wrap(b"abcdefghij", 4), vec![b"abcd".to_vec(), b"  ef".to_vec(), b"  gh".to_vec(), b"  ij".to_vec()]);
    }
}
