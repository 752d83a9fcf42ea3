@auth @azure @regression
Feature: Only callers holding the scoring key get forecasts
  A deployment with key authentication on must refuse every call that does not carry its key,
  and must not reveal a forecast while refusing.

  Background:
    Given the forecasting service is deployed with key authentication on

  Scenario: A call without the scoring key is refused
    When a caller asks for a forecast without the scoring key
    Then the service refuses it as unauthenticated
    And the refusal carries no forecast

  Scenario: A call with a wrong scoring key is refused
    When a caller asks for a forecast with a wrong scoring key
    Then the service refuses it as unauthenticated
    And the refusal carries no forecast
