//! The principal of a client certificate: its subject's distinguished
//! name in RFC 4514 form, most specific part first and without spaces
//! (`CN=billing,O=Acme,C=DE`), as `openssl x509 -subject -nameopt RFC2253`
//! prints it and as Kafka names TLS principals. ACLs name it the same way.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject of a DER certificate, or why it has none that can name a principal.
pub fn subject(der: &[u8]) -> Result<String, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut attrs = Vec::new();
        for attr in rdn.iter() {
            let key = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                .map(str::to_string)
                .unwrap_or_else(|_| attr.attr_type().to_id_string());
            let value = attr
                .as_str()
                .map_err(|e| format!("subject attribute {key} is not a string: {e}"))?;
            attrs.push(format!("{key}={}", escape(value)));
        }
        parts.push(attrs.join("+"));
    }
    if parts.is_empty() {
        return Err("the certificate's subject is empty".into());
    }
    parts.reverse();
    Ok(parts.join(","))
}

/// RFC 4514 escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_reads_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::CommonName, "billing");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject(cert.der()).unwrap(),
            "CN=billing,O=Acme\\, Inc,C=DE"
        );
        assert!(subject(b"not a certificate").is_err());
    }
}
