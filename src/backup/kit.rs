//! The recovery kit: everything needed to get the data back on a fresh host with only this page —
//! the recovery identity as text and QR code, the repository locations and their wrapped keys,
//! what the admin must supply, and the restore commands in German and English. Rendered as a
//! terminal page and written as a text file for printing.

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
        if with_qr && !self.identity.is_empty() {
            s += &qr_terminal(&self.identity);
            s += "\n";
        }
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
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_names_everything_needed() {
        let id = crate::backup::keys::generate_identity();
        let kit = Kit {
            identity: id.expose_secret().to_string(),
            recipient: id.recipient.clone(),
            label: "kit-1".into(),
            host: "box".into(),
            created: "2026-11-28".into(),
            targets: vec![KitTarget { name: "usb".into(), location: "/mnt/usb/hafen".into(), supply: None, wrapped_key: Some("-----BEGIN AGE ENCRYPTED FILE-----\nx\n-----END AGE ENCRYPTED FILE-----".into()) }],
        };
        let page = kit.render(true);
        for want in [id.expose_secret(), id.recipient.as_str(), "/mnt/usb/hafen", "BEGIN AGE ENCRYPTED FILE", "WIEDERHERSTELLEN", "RESTORE (English)", "restic -r", "hafen restore --repo"] {
            assert!(page.contains(want), "kit lacks {want}");
        }
        assert!(page.contains("--all"), "the kit names the whole-box restore");
        assert!(page.contains('█') || page.contains('▀') || page.contains('▄'), "no QR code");
    }
}
