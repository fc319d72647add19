"""Where the citizen finds the query code (查询码) is named the same way in every message: on the acceptance page (受理页面)
or in the receipt mail (受理回执邮件). The look-up's refusal without a proof and the API's description of the field
named only the receipt (受理回执中的查询码), which a caller or a citizen without an e-mail address never gets."""

from services.intake.api import NO_PROOF, ProgressQuery

WHERE = "受理页面或受理回执邮件上的查询码"  # as the progress page says it


def test_a_look_up_without_a_proof_is_told_where_the_query_code_is():
    assert WHERE in NO_PROOF.zh and "联系电话后四位" in NO_PROOF.zh
    assert "acceptance page" in NO_PROOF.en and "receipt mail" in NO_PROOF.en


def test_the_apis_query_code_field_names_both_places():
    description = ProgressQuery.model_fields["query_code"].description
    assert "受理页面" in description and "受理回执邮件" in description
    assert "acceptance page" in description and "receipt mail" in description
