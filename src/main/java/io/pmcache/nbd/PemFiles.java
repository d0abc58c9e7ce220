package io.pmcache.nbd;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads the PEM files of nbdkit's certificate directory: certificates (one or a chain) and an
 * unencrypted private key in any of the three encodings the usual tools write — PKCS#8
 * ({@code BEGIN PRIVATE KEY}: openssl), PKCS#1 RSA ({@code BEGIN RSA PRIVATE KEY}) and SEC1 EC
 * ({@code BEGIN EC PRIVATE KEY}), the last two as GnuTLS's {@code certtool --generate-privkey}
 * writes them. PKCS#1 and SEC1 keys are wrapped into PKCS#8 (a few DER headers, no cryptography)
 * for the JDK's {@link KeyFactory}. Text around the PEM blocks (certtool's key info) is ignored.
 * Every error names the file.
 */
final class PemFiles {
    private static final Pattern BLOCK = Pattern.compile(
            "-----BEGIN ([A-Z0-9 ]+)-----([A-Za-z0-9+/=\\s]*?)-----END \\1-----");
    /** DER of the rsaEncryption algorithm identifier: SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }. */
    private static final byte[] RSA_ALGORITHM = {0x30, 0x0d, 0x06, 0x09, 0x2a, (byte) 0x86, 0x48, (byte) 0x86,
        (byte) 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00};
    /** DER of OID 1.2.840.10045.2.1 (id-ecPublicKey). */
    private static final byte[] EC_PUBLIC_KEY_OID = {0x06, 0x07, 0x2a, (byte) 0x86, 0x48, (byte) 0xce, 0x3d, 0x02, 0x01};
    private static final String[] KEY_ALGORITHMS = {"RSA", "EC", "Ed25519", "Ed448", "RSASSA-PSS"};

    private PemFiles() {
    }

    /** Every certificate in {@code file}, in file order (a leaf first, then its chain). */
    static List<X509Certificate> certificates(Path file) throws IOException {
        List<X509Certificate> out = new ArrayList<>();
        try {
            CertificateFactory factory = CertificateFactory.getInstance("X.509");
            for (Block b : blocks(file)) {
                if (b.type().equals("CERTIFICATE") || b.type().equals("X509 CERTIFICATE")) {
                    out.add((X509Certificate) factory.generateCertificate(new ByteArrayInputStream(b.der())));
                }
            }
        } catch (CertificateException e) {
            throw new IOException(file + ": not a valid X.509 certificate: " + e.getMessage(), e);
        }
        if (out.isEmpty()) {
            throw new IOException(file + ": no PEM certificate (-----BEGIN CERTIFICATE-----) in the file");
        }
        return out;
    }

    /** The one private key in {@code file}. */
    static PrivateKey privateKey(Path file) throws IOException {
        for (Block b : blocks(file)) {
            byte[] pkcs8;
            switch (b.type()) {
                case "PRIVATE KEY" -> pkcs8 = b.der();
                case "RSA PRIVATE KEY" -> pkcs8 = pkcs8(RSA_ALGORITHM, b.der());
                case "EC PRIVATE KEY" -> pkcs8 = pkcs8(ecAlgorithm(file, b.der()), b.der());
                case "ENCRYPTED PRIVATE KEY" -> throw new IOException(file
                        + ": the private key is encrypted; give an unencrypted key (as nbdkit needs too), e.g. "
                        + "`openssl pkcs8 -in KEY -out server-key.pem -nocrypt`, and protect it with file permissions");
                default -> {
                    continue;
                }
            }
            return decode(file, pkcs8);
        }
        throw new IOException(file + ": no PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or "
                + "EC PRIVATE KEY) in the file");
    }

    private static PrivateKey decode(Path file, byte[] pkcs8) throws IOException {
        PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(pkcs8);
        for (String algorithm : KEY_ALGORITHMS) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(spec);
            } catch (GeneralSecurityException e) {
                // not this algorithm: try the next
            }
        }
        throw new IOException(file + ": the private key is of no algorithm this JDK reads ("
                + String.join(", ", KEY_ALGORITHMS) + ")");
    }

    private record Block(String type, byte[] der) {
    }

    private static List<Block> blocks(Path file) throws IOException {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.US_ASCII);
        } catch (java.nio.charset.MalformedInputException e) {
            throw new IOException(file + ": not a PEM file (binary content)", e);
        }
        List<Block> out = new ArrayList<>();
        Matcher m = BLOCK.matcher(text);
        while (m.find()) {
            try {
                out.add(new Block(m.group(1), Base64.getMimeDecoder().decode(m.group(2))));
            } catch (IllegalArgumentException e) {
                throw new IOException(file + ": bad base64 in the PEM block " + m.group(1), e);
            }
        }
        return out;
    }

    /** SEC1's curve OID (the [0] field of ECPrivateKey) as a PKCS#8 algorithm identifier. */
    private static byte[] ecAlgorithm(Path file, byte[] sec1) throws IOException {
        try {
            Der seq = new Der(sec1, 0);
            int p = seq.contentStart;
            while (p < seq.end) {
                Der field = new Der(sec1, p);
                if ((sec1[p] & 0xff) == 0xa0) { // [0] parameters: namedCurve OID
                    Der oid = new Der(sec1, field.contentStart);
                    ByteArrayOutputStream ids = new ByteArrayOutputStream();
                    ids.writeBytes(EC_PUBLIC_KEY_OID);
                    ids.write(sec1, field.contentStart, oid.end - field.contentStart);
                    return tlv(0x30, ids.toByteArray());
                }
                p = field.end;
            }
        } catch (IndexOutOfBoundsException e) {
            throw new IOException(file + ": the EC PRIVATE KEY block is not valid DER", e);
        }
        throw new IOException(file + ": the EC PRIVATE KEY names no curve; write it as PKCS#8 "
                + "(`openssl pkcs8 -topk8 -nocrypt`)");
    }

    /** PrivateKeyInfo ::= SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING key }. */
    private static byte[] pkcs8(byte[] algorithm, byte[] key) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.writeBytes(new byte[] {0x02, 0x01, 0x00});
        body.writeBytes(algorithm);
        body.writeBytes(tlv(0x04, key));
        return tlv(0x30, body.toByteArray());
    }

    private static byte[] tlv(int tag, byte[] content) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(tag);
        int n = content.length;
        if (n < 0x80) {
            out.write(n);
        } else {
            int bytes = (32 - Integer.numberOfLeadingZeros(n) + 7) / 8;
            out.write(0x80 | bytes);
            for (int i = bytes - 1; i >= 0; i--) {
                out.write(n >>> (8 * i));
            }
        }
        out.writeBytes(content);
        return out.toByteArray();
    }

    /** One DER element at {@code start}: where its content starts and where it ends. */
    private static final class Der {
        final int contentStart;
        final int end;

        Der(byte[] b, int start) {
            int lengthByte = b[start + 1] & 0xff;
            int length;
            int p = start + 2;
            if (lengthByte < 0x80) {
                length = lengthByte;
            } else {
                int n = lengthByte & 0x7f;
                if (n == 0 || n > 3) {
                    throw new IndexOutOfBoundsException("DER length of " + n + " bytes");
                }
                length = 0;
                for (int i = 0; i < n; i++) {
                    length = length << 8 | (b[p++] & 0xff);
                }
            }
            contentStart = p;
            end = p + length;
            if (end > b.length) {
                throw new IndexOutOfBoundsException("DER element runs past the end");
            }
        }
    }
}
