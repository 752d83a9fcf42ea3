@contract
Feature: The scoring contract holds for every caller
  A bad request is refused with a client error whose JSON body names the offending field, so the
  caller can fix it; it never crashes the service and never comes back as a success. Every accepted
  request is answered in the published response shape.

  Background:
    Given the forecasting service is deployed

  Scenario Outline: A request with <problem> is refused naming the field "<field>"
    When a caller sends a request with <problem>
    Then the service refuses it as a client error
    And the refusal names the field "<field>"
    And the service is still healthy and forecasting

    @smoke
    Examples: The mistake callers make most
      | problem                   | field   |
      | the horizon given as text | horizon |

    @regression
    Examples: Horizons the contract does not allow
      | problem                   | field   |
      | no horizon                | horizon |
      | an unknown extra field    | $       |
      | the horizon given as true | horizon |
      | a fractional horizon      | horizon |
      | a zero horizon            | horizon |
      | a negative horizon        | horizon |

    @regression @local
    Examples: Horizons beyond what the model forecasts
      | problem                                     | field   |
      | a horizon beyond the model's maximum        | horizon |
      | a legacy horizon beyond the model's maximum | data[0] |

    @regression
    Examples: Bodies that are not a request
      | problem                          | field |
      | an empty body                    | $     |
      | a body that is not JSON          | $     |
      | a JSON list instead of an object | $     |

    @regression
    Examples: Original-form requests gone wrong
      | problem                        | field   |
      | legacy data that is not a list | data    |
      | legacy data that is empty      | data    |
      | a legacy horizon given as text | data[0] |
      | both a horizon and legacy data | $       |

  Scenario Outline: An accepted <request> is answered in the published response shape
    When a caller sends a well-formed <request>
    Then the service accepts it
    And the answer validates against the contract response schema

    @regression
    Examples: Any deployed model
      | request                              |
      | request for one period               |
      | original-form request for one period |

    @regression @local
    Examples: Horizons from the model card
      | request                                       |
      | request for one season                        |
      | request for the maximum horizon               |
      | original-form request for the maximum horizon |
