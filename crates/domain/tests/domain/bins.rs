//! The BIN table: spot checks, the matching rule, operator extras (verification.md §2
//! steps 5–6).

use cardcheck_domain::{
    BinError, BinLookup, BinOrigin, BinTable, CardStatus, CardType, Network, ResultCode,
    SourceAnswer,
};

use crate::common::{Scripted, card, decide, engine};

fn found(table: &BinTable, number: &str) -> cardcheck_domain::BinEntry {
    match table.lookup(&card(number)) {
        BinLookup::Found(e) => e.clone(),
        other => panic!("{number}: {other:?}"),
    }
}

#[test]
fn spot_checks_of_well_known_chinese_bins() {
    let t = BinTable::builtin();
    let cases = [
        (
            "6222020200112345678",
            "ICBC",
            "中国工商银行",
            CardType::Debit,
        ),
        (
            "6228480402564890018",
            "ABC",
            "中国农业银行",
            CardType::Debit,
        ),
        (
            "6217001210024455220",
            "CCB",
            "中国建设银行",
            CardType::Debit,
        ),
        ("6225880137006489", "CMB", "招商银行", CardType::Debit),
        (
            "1031234567890123456",
            "ABC",
            "中国农业银行",
            CardType::Debit,
        ),
    ];
    for (number, code, bank, card_type) in cases {
        let e = found(t, number);
        assert_eq!(e.bank_code.as_deref(), Some(code), "{number}");
        assert_eq!(e.bank_name.as_deref(), Some(bank), "{number}");
        assert_eq!(e.card_type, card_type, "{number}");
        assert_eq!(e.network, Network::UnionPay, "{number}");
        assert!(!e.luhn_required, "{number}");
        assert_eq!(e.origin, BinOrigin::Issuer);
    }
    for number in [
        "9558801001114990001",
        "9558001234567890123",
        "9558123456789012345",
    ] {
        assert_eq!(
            found(t, number).bank_code.as_deref(),
            Some("ICBC"),
            "{number}"
        );
    }
}

#[test]
fn chinese_bins_in_international_ranges_take_that_network_and_its_luhn_rule() {
    let t = BinTable::builtin();
    let visa = found(t, "4026580000000078");
    assert_eq!(visa.bank_code.as_deref(), Some("CMB"));
    assert_eq!(visa.network, Network::Visa);
    assert!(visa.luhn_required);
    assert_eq!(found(t, "5105290000000000").network, Network::Mastercard);
    assert_eq!(found(t, "3563900000000000").network, Network::Jcb);
    assert_eq!(
        found(t, "370246000000000").network,
        Network::AmericanExpress
    );
    // Old domestic BINs under catch-all ranges stay UnionPay (no mandatory Luhn).
    let boc = found(t, "6013820000000000000");
    assert_eq!(boc.bank_code.as_deref(), Some("BOC"));
    assert_eq!(boc.network, Network::UnionPay);
    assert!(!boc.luhn_required);
}

#[test]
fn cards_known_only_to_a_network_have_a_network_but_no_bank() {
    let t = BinTable::builtin();
    for (number, network) in [
        ("4242424242424242", Network::Visa),
        ("5555555555554444", Network::Mastercard),
        ("378282246310005", Network::AmericanExpress),
        ("36227206271667", Network::DinersClub),
        ("6200000000000005", Network::UnionPay),
        ("8100010000000142", Network::UnionPay),
    ] {
        let e = found(t, number);
        assert_eq!(e.network, network, "{number}");
        assert_eq!(e.bank_name, None);
        assert_eq!(e.origin, BinOrigin::Network);
    }
}

#[test]
fn unknown_prefixes_have_no_issuer() {
    let t = BinTable::builtin();
    for number in ["7000000000000000086", "700000000000", "9700000000000000"] {
        assert_eq!(t.lookup(&card(number)), BinLookup::NoIssuer, "{number}");
    }
}

#[test]
fn a_known_prefix_with_a_wrong_length() {
    let t = BinTable::builtin();
    // 622202 is ICBC/19 and UnionPay issues 14..=19: 13 digits exist nowhere.
    match t.lookup(&card("6222020200112")) {
        BinLookup::WrongLength(e) => assert_eq!(e.bank_code.as_deref(), Some("ICBC")),
        other => panic!("{other:?}"),
    }
    // CMB's Visa BIN 402658 is 16; Visa has 16, 18, 19: 17 is wrong.
    match t.lookup(&card("40265800000000001")) {
        BinLookup::WrongLength(e) => assert_eq!(e.bank_code.as_deref(), Some("CMB")),
        other => panic!("{other:?}"),
    }
    // Network only: Amex is 15 digits.
    match t.lookup(&card("3782822463100050")) {
        BinLookup::WrongLength(e) => assert_eq!(e.network, Network::AmericanExpress),
        other => panic!("{other:?}"),
    }
    // 621234 is CSC/16, but UnionPay issues 14 digits: passes with the network entry
    // (test_cards_public.csv, Braintree's 14-digit UnionPay card).
    let e = found(t, "62123456789002");
    assert_eq!((e.network, e.bank_code), (Network::UnionPay, None));
}

#[test]
fn the_longest_prefix_with_the_cards_length_wins() {
    let t = BinTable::builtin();
    // 622509 has ICBC/18 and GDRCC/19.
    assert_eq!(
        found(t, "622509000000000000").bank_code.as_deref(),
        Some("ICBC")
    );
    assert_eq!(
        found(t, "6225090000000000000").bank_code.as_deref(),
        Some("GDRCC")
    );
    // 9 digits beat 6: 436742193 CCB/19.
    assert_eq!(found(t, "4367421930000000000").prefix, "436742193");
}

#[tokio::test]
async fn spot_checks_through_the_pipeline() {
    let source = Scripted::new(Ok(SourceAnswer::Match(CardStatus::Active)));
    let lenient = engine(false);
    let strict = engine(true);
    let run = |e, n: &'static str| {
        let source = &source;
        async move { decide(e, "张三", n, source).await.result }
    };
    // Visa-range card with a bad check digit → -7, strict or not.
    assert_eq!(
        run(&lenient, "4242424242424241").await,
        ResultCode::InvalidCardNumber
    );
    assert_eq!(
        run(&lenient, "4026580000000079").await,
        ResultCode::InvalidCardNumber
    );
    // UnionPay card with a bad check digit → the source decides; strict → -7.
    assert_eq!(
        run(&lenient, "6222020200112345670").await,
        ResultCode::Passed
    );
    assert_eq!(run(&lenient, "6221558812340000").await, ResultCode::Passed);
    assert_eq!(
        run(&strict, "6221558812340000").await,
        ResultCode::InvalidCardNumber
    );
    // Unknown prefix → -8; known prefix, wrong length → -7.
    assert_eq!(
        run(&lenient, "7000000000000000086").await,
        ResultCode::NoIssuer
    );
    assert_eq!(
        run(&lenient, "6222020200112").await,
        ResultCode::InvalidCardNumber
    );
}

#[test]
fn operator_extra_bins_are_merged_and_win_on_the_same_prefix_and_length() {
    let extra = "bin_prefix,bank_name,bank_code,card_type,card_length,source,note\n\
                 700001,测试银行,TESTBANK,DC,16,operator,\n\
                 622202,工行（运营方）,ICBC2,CC,19,operator,\n\
                 622202,工行短卡,ICBC3,,13,operator,\n";
    let t = BinTable::with_extra_csv(extra).unwrap();
    let e = found(&t, "7000010000000000");
    assert_eq!(e.bank_code.as_deref(), Some("TESTBANK"));
    assert_eq!(e.origin, BinOrigin::Extra);
    assert_eq!(e.network, Network::UnionPay);
    let e = found(&t, "6222020200112345678");
    assert_eq!(
        (e.bank_code.as_deref(), e.card_type),
        (Some("ICBC2"), CardType::Credit)
    );
    assert_eq!(
        found(&t, "6222020200112").bank_code.as_deref(),
        Some("ICBC3")
    );
    assert_eq!(t.len(), BinTable::builtin().len() + 2);
    // The built-in table is untouched.
    assert_eq!(
        BinTable::builtin().lookup(&card("7000010000000000")),
        BinLookup::NoIssuer
    );
}

#[test]
fn extra_bins_with_only_the_required_columns() {
    let t = BinTable::with_extra_csv("card_length,bin_prefix\n16,7777\n").unwrap();
    let e = found(&t, "7777000000000000");
    assert_eq!((e.bank_name, e.card_type), (None, CardType::Unknown));
}

#[test]
fn malformed_extra_bins_are_rejected_with_a_line_number() {
    let head = "bin_prefix,bank_name,bank_code,card_type,card_length\n";
    let cases = [
        (
            format!("{head}12a4,x,X,DC,16\n"),
            BinError::InvalidPrefix { line: 2 },
        ),
        (
            format!("{head}12345678901,x,X,DC,16\n"),
            BinError::InvalidPrefix { line: 2 },
        ),
        (
            format!("{head}1234,x,X,DC,16\n1234,x,X,DC,20\n"),
            BinError::InvalidLength { line: 3 },
        ),
        (
            format!("{head}1234,x,X,DC,abc\n"),
            BinError::InvalidLength { line: 2 },
        ),
        (
            format!("{head}1234,x,X,XX,16\n"),
            BinError::InvalidCardType { line: 2 },
        ),
        (
            "bank_name,card_length\nx,16\n".to_owned(),
            BinError::MissingColumn("bin_prefix"),
        ),
        (
            "bin_prefix\n1234\n".to_owned(),
            BinError::MissingColumn("card_length"),
        ),
    ];
    for (text, err) in cases {
        assert_eq!(BinTable::with_extra_csv(&text).unwrap_err(), err, "{text}");
    }
}

#[test]
fn every_builtin_issuer_row_is_reachable_by_a_card_of_its_length() {
    // A card made of the prefix padded with zeros finds an entry with this prefix or a
    // longer one, with the same length (no row is shadowed by the lookup order).
    let t = BinTable::builtin();
    for e in t.entries().iter().filter(|e| e.origin == BinOrigin::Issuer) {
        let len = usize::from(e.lengths[0]);
        let number = format!("{:0<len$}", e.prefix);
        match t.lookup(&card(&number)) {
            BinLookup::Found(hit) => {
                assert!(hit.prefix.starts_with(&e.prefix), "{number}: {hit:?}");
                assert!(hit.accepts_length(len));
            }
            other => panic!("{number}: {other:?}"),
        }
    }
}
